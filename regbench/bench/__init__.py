"""Benchmarks: commands that print speed and memory figures (``regbench bench …``), never tests.

One module each: ``harness`` (the harness' own cost per pair), ``data`` (loading rates),
``cfog`` (CFOG's stages beside OpenCV), ``soma`` (SOMA inference, beside the released code),
``startup`` (how fast the command line answers).
"""
