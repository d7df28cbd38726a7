"""policies: controllers with one contract, ``reset(instruction)`` then ``act(obs) -> action``.

Owns the Mobile VLA as the team's fork computes it (``vla_model``: transformers Kosmos-2 + peft
LoRA + action token + the three action heads), its typed config (``vla_config``) and the
RoboVLMs JSON mapping (``robovlms_config``), checkpoint key matching, files and loading
(``checkpoint_keys``, ``checkpoint_io``, ``checkpoint``), the training eras and the two
reproduction profiles (``profiles``), explicit pre/post-processing (``processors``) and the
deployment's frame transport (``transport``), the closed-loop policy (``vla_policy``), the
scripted expert and the baselines, and the team's HTTP inference protocol both ways
(``protocol``, the client policy ``http_client``, the server ``python -m policies.serve``). It
knows nothing of the simulator beyond the observation/action contract (the privileged expert
reads the env's ``scene_state()``); it must not import ``train`` or ``eval``.
"""
