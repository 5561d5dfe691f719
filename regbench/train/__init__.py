"""Training learned methods (``regbench train``).

``data``: a dataset split as randomly (training) or fixedly (validation) deformed samples;
``loop``: the generic loop — optimiser, schedule, mixed precision, checkpoints, curves, resume.
"""
from .loop import TrainConfig, Trainer, load_recipe, resolve_amp, train

__all__ = ["TrainConfig", "Trainer", "load_recipe", "resolve_amp", "train"]
