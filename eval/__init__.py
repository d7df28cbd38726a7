"""Evaluation: closed-loop rollouts of checkpoints and baselines, statistics, reports, videos.

Rooms:
- ``rollout``: ``python -m eval.rollout --ckpt top3``, the orchestration; ``rollout_cli``: its
  command line, read once into ``config``: the typed run config (scene grid, scene settings,
  policy options) that is passed down.
- ``select``: which checkpoints of a training run (top-k by val_loss).
- ``runner/``: how episodes are run: the plan of policies and seeded episodes (``plan``), the
  checks before any episode (``preflight``), the policy specs and factory (``policy_factory``),
  the episode loop (``episode``), the worker pool, per-URL lanes and env construction
  (``workers``), provenance and resume (``provenance``). A batched or distributed runner belongs
  here, beside them.
- ``results/``: what is kept of them: per-episode records (``records``), statistics (``stats``),
  aggregation (``summary``), plots, the report (``report``) and videos (``video``).
- ``replay``: ``python -m eval.replay``, the real key sequences in the calibrated scene.
- ``latency``: per-step latency measurement.

A sim-vs-real measure (real episodes against the simulator) is a tool of its own beside
``rollout`` and ``replay``. This package may import ``mvla_sim``, ``policies`` and ``train``'s episode files
(``train.episodes``); nothing imports ``eval``.
"""
