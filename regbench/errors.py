"""The errors a user can fix. Each message names the thing that is wrong and how to fix it.

The command line shows any :class:`RegbenchError` as one line (exit status 1), never a traceback;
anything else is a bug in regbench or in a method, and keeps its traceback.
"""
from __future__ import annotations


class RegbenchError(Exception):
    """Base of every user-facing error."""

    def __str__(self) -> str:  # KeyError-like subclasses would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(RegbenchError, ValueError):
    """A config, option or override names an unknown key or has a bad value."""


class UnknownNameError(RegbenchError, KeyError):
    """A method, dataset, protocol, recipe or grid name is not known."""


class DatasetError(RegbenchError, RuntimeError):
    """A dataset folder is missing, incomplete or malformed."""


class WeightsMissingError(RegbenchError, RuntimeError):
    """A learned method's weights are not on this machine; the message says what to fetch and where."""


class GridError(RegbenchError, ValueError):
    """A grid file is malformed; the message names the key."""


class StoreError(RegbenchError, OSError):
    """The results folder or the tracking store cannot be used (read-only, unreachable, full)."""


class MethodError(RegbenchError, RuntimeError):
    """A method failed as a whole (its set-up raised), not on one pair."""
