"""The Mobile VLA model family: what the team's RoboVLMs fork computes, number for number.

Rooms: ``config`` (the typed :class:`VLAConfig`, one source of defaults), ``robovlms_config``
(the RoboVLMs JSON mapping), ``model`` (transformers Kosmos-2 + peft LoRA + action token +
heads), ``tokenizer_tiny`` (the CPU preset's tokenizer), ``checkpoint_keys`` / ``checkpoint_io``
/ ``checkpoint`` (key matching, files, loading), ``profiles`` (training eras and the
as_trained / as_deployed profiles), ``processors`` (explicit pre/post-processing), ``transport``
(the deployment's JPEG frame transport), ``policy`` (the closed-loop :class:`VLAPolicy`) and
``inspect`` (``python -m policies.vla.inspect CKPT``).
"""
