"""How episodes are run: the plan of policies and seeded episodes (``plan``), the checks before
any episode (``preflight``), policy specs and the factory (``policy_factory``), the episode loop
(``episode``), the worker pool with per-URL lanes and env construction (``workers``) and
provenance/resume (``provenance``). A batched runner or a distributed backend (Ray) is a module
here, beside ``workers``, taking the same plan and returning the same records."""
