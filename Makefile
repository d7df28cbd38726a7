# mvla-sim: one entry point. `make eval` runs the main job, `make test` the test suite;
# both install everything first (torch's CPU build 2.13.0 first, so pip never pulls a CUDA build).
PYTHON ?= python3
PIP := $(PYTHON) -m pip
RUNS ?= runs
EPISODES ?= 10

.PHONY: install eval demo test lint bench reference

install:
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[dev]"

eval: install  ## the main job: top-3 checkpoints (bundled reference run if $(RUNS)/ has none) -> results/, videos/
	$(PYTHON) -m eval.rollout --ckpt top3 --runs $(RUNS) --episodes $(EPISODES) --baselines expert,straight,always_left --videos 1

demo: install  ## the calibration table: every real key sequence in every scene, one video per sequence
	$(PYTHON) -m eval.replay

test: install  ## the whole test suite (CI runs exactly this)
	$(PYTHON) -m pytest -q -p no:cacheprovider

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

bench: install
	$(PYTHON) benchmarks/bench_env.py
	$(PYTHON) benchmarks/bench_vla_cache.py
	$(PYTHON) benchmarks/bench_rollout.py
	$(PYTHON) benchmarks/bench_serve.py
	$(PYTHON) benchmarks/bench_serve_hardening.py
	$(PYTHON) benchmarks/bench_batch.py
	$(PYTHON) benchmarks/bench_ray.py

reference: install  ## retrain the bundled reference run (see README)
	bash scripts/train_reference.sh
