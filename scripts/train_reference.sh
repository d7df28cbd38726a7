#!/usr/bin/env bash
# Reproduce the bundled reference run (assets/checkpoints/reference/) on a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS="${EPOCHS:-12}"
python -m train.generate --episodes 480 --out data/sim_reference --noise 0.05 --seed 7 --workers 2 --quiet
rm -rf runs/reference
python -m train.finetune --data data/sim_reference --run-dir runs/reference --max-epochs "$EPOCHS" --seed 123
python scripts/bundle_reference.py runs/reference assets/checkpoints/reference
python -m eval.rollout --ckpt top3 --runs assets/checkpoints/reference --episodes 25 \
    --baselines expert,straight,random,always_left --videos 1 --out results/reference
