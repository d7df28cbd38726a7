"""Sim-vs-real gap of a checkpoint: ``python -m eval.realgap --real DIR [--ckpt CKPT ...] --out DIR``.

Rooms:

- :mod:`eval.realgap.sources`: the user's real frames (``.h5`` episodes in the real format, or a
  folder of JPEG/PNG images), their channel order, and whether each can be paired;
- :mod:`eval.realgap.pairing`: an episode's recorded actions replayed in the calibrated scene that
  its file name describes, one simulated frame per real frame;
- :mod:`eval.realgap.metrics`: the appearance gap (CIELAB statistics, histogram distance, SSIM,
  gradients, paired pixel colour difference);
- :mod:`eval.realgap.features`: the feature gap (Fréchet distance in the checkpoint's own Kosmos-2
  image path; torch);
- :mod:`eval.realgap.behaviour`: the behaviour gap (open-loop actions on real vs paired simulated
  windows, direction agreement by key class);
- :mod:`eval.realgap.report`: contact sheets, the self-contained HTML report, ``realgap.json``;
- :mod:`eval.realgap.standins`: stand-in episodes for tests and demos (rendered, never real).
"""
