"""Training: real-format HDF5 episodes, sim data generation, datasets and Lightning LoRA fine-tuning.

Rooms:
- ``episodes``: the team's HDF5 episode files (names, attributes, reading and atomic writing).
- ``generate/``: ``python -m train.generate``, scripted-expert rollouts saved as episodes (config,
  per-index plan, rollout, writer, key-sequence report, the run, the CLI).
- ``stats``: ``python -m train.stats``, the statistics of a folder of episodes.
- ``dataset``: training windows over episode files, as the fork's loader cuts them.
- ``lightning_module`` / ``finetune``: the Lightning module and ``python -m train.finetune``.

Must not import ``eval``.
"""
