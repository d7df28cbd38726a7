"""policies: controllers with one contract, ``reset(instruction)`` then ``act(obs) -> action``.

Owns the VLA model (transformers Kosmos-2 backbone + peft LoRA + LSTM action head), checkpoint
I/O in the RoboVLMs layout, pre/post-processing, the scripted expert and the baselines. It knows
nothing of the simulator beyond the observation/action contract (the privileged expert reads
the env's ``scene_state()``); it must not import ``train`` or ``eval``.
"""
