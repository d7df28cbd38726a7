"""policies: controllers with one contract, ``reset(instruction)`` then ``act(obs) -> action``.

Rooms:
- ``base``: the :class:`~policies.base.Policy` contract that every controller meets and that
  ``eval`` types against, and the batched one (:class:`~policies.base.BatchPolicy`:
  ``start_episode``, ``act_batch`` over N live episodes).
- ``vla/``: the Mobile VLA as the team's fork computes it (typed config, the RoboVLMs JSON
  mapping, the model, checkpoint keys/files/loading, training eras and reproduction profiles,
  pre/post-processing, the deployment's frame transport, the closed-loop policy, ``inspect``).
- ``http/``: the team's HTTP inference protocol both ways (``protocol``, the client policy
  ``client``, the server ``python -m policies.http.serve``).
- ``scripted/``: the privileged expert (it reads the env's ``scene_state()``) and the baselines.
- ``messages``: one-line error formatting shared by the rooms.
- ``options``: ``--policy-option KEY=VALUE`` parsing for the CLIs that build policies.

It knows nothing of the simulator beyond the observation/action contract; it must not import
``train`` or ``eval``.
"""
