"""Training: real-format HDF5 episodes, sim data generation, datasets and Lightning LoRA fine-tuning.

Must not import ``eval``.
"""
