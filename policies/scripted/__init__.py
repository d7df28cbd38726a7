"""Scripted controllers: the privileged ``expert`` (drives like the teleoperators, reads the env's
``scene_state()``; it also generates training data) and the ``baselines`` (straight ahead,
always-left, random, ...)."""
