"""How episodes are run: policy specs and the factory (``policy_factory``), the episode loop
(``episode``), the worker pool with per-URL lanes (``workers``) and provenance/resume
(``provenance``)."""
