"""Evaluation: closed-loop rollouts of checkpoints and baselines, statistics, reports, videos.

``python -m eval.rollout --ckpt top3`` picks checkpoints of a training run (``eval.select``),
rolls them out, with baselines and policies served over HTTP, on one seeded, shared episode set
over the scene grid (``eval.rollout`` orchestrates: the typed config and its command line in
``eval.config``, policy specs and the factory in ``eval.policy_factory``, the episode runner in
``eval.episode``, the worker pool in ``eval.workers``, provenance and resume in
``eval.provenance``), appends per-episode records to ``episodes.jsonl`` (``eval.records``),
aggregates them into ``summary.json`` (``eval.summary`` with the tests of ``eval.stats``), draws
plots (``eval.plots``), writes ``report.md``/``report.html`` (``eval.report``) and videos
(``eval.video``).

This package may import ``mvla_sim`` and ``policies``; nothing imports ``eval``.
"""
