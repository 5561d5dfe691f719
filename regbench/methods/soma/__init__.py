"""SOMA (arXiv 2511.13168): FGE + GLAM SAR–optical matcher; see ``docs/soma.md``."""
from .method import SOMA, SOMAConfig, SOMANet, load_checkpoint, parameter_counts, save_checkpoint

__all__ = ["SOMA", "SOMAConfig", "SOMANet", "load_checkpoint", "parameter_counts", "save_checkpoint"]
