"""regbench: a benchmark for SAR–optical registration."""
__version__ = "0.1.0"
