#!/usr/bin/env bash
# Reproduce the bundled reference run (assets/checkpoints/reference/) on a CPU (about 12 minutes).
# Every epoch is kept (--save-top-k -1); three epochs from different stages of training are bundled
# (EPOCHS_BUNDLED), so that the top-3-by-val_loss report has checkpoints that behave differently.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS="${EPOCHS:-20}"
EPOCHS_BUNDLED="${EPOCHS_BUNDLED:-4,10,19}"
python -m train.generate --episodes 480 --out data/sim_reference --seed 7 --workers 2 --quiet
rm -rf runs/reference
python -m train.finetune --data data/sim_reference --run-dir runs/reference --max-epochs "$EPOCHS" --seed 123 \
    --save-top-k -1 --quiet
python scripts/bundle_reference.py runs/reference assets/checkpoints/reference --epochs "$EPOCHS_BUNDLED"
python -m eval.rollout --ckpt top3 --runs assets/checkpoints/reference --episodes 12 \
    --profile as_trained,as_deployed --baselines expert,straight,random,always_left --videos 1 \
    --out results/reference
