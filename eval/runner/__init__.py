"""How episodes are run: the plan of policies and seeded episodes (``plan``), the checks before
any episode (``preflight``), policy specs and the factory (``policy_factory``), the episode loop
(``episode``), the worker pool with per-URL lanes and env construction (``workers``), the batched
runner (``batched``: ``--batch N`` envs in lock-step around one model), the Ray backend
(``ray_backend``), the choice between them (``backends``), the episodes recorded as they finish
(``collect``) and provenance/resume (``provenance``). Every runner takes the same plan, runs each
episode with ``episode``'s parts and returns the same records."""
