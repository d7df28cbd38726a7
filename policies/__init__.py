"""policies: controllers with one contract, ``reset(instruction)`` then ``act(obs) -> action``.

Owns the VLA model (transformers Kosmos-2 backbone + peft LoRA + LSTM action head), checkpoint
I/O in the RoboVLMs layout, pre/post-processing, the scripted expert and the baselines, and the
team's HTTP inference protocol both ways (``protocol``, the client policy ``http_client``, the
server ``python -m policies.serve``). It knows nothing of the simulator beyond the
observation/action contract (the privileged expert reads the env's ``scene_state()``); it must
not import ``train`` or ``eval``.
"""
