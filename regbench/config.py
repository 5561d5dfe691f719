"""Configs: dataclass defaults < YAML card < ``--set key=value`` overrides, strictly checked.

A config is a (possibly nested) dataclass. Overrides are plain dicts with dotted or nested keys;
an unknown key is an error that lists the valid ones. A field's range or choices are declared
with :func:`setting` and checked by :func:`validate` whenever a config is resolved, so a bad value
stops before any work. The resolved config is hashed canonically.

>>> @dataclass
... class Config:
...     radius: int = setting(20, ge=1)           # a bound
...     model: str = setting("affine", choices=("affine", "homography"))
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from typing import Any, Iterable

import yaml

from .errors import ConfigError


_BOUNDS = {"ge": (lambda v, b: v >= b, "≥"), "gt": (lambda v, b: v > b, ">"),
           "le": (lambda v, b: v <= b, "≤"), "lt": (lambda v, b: v < b, "<")}


def setting(default: Any = dataclasses.MISSING, *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None, choices: Iterable[Any] | None = None,
            default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field whose value (each element, for a list) must satisfy the bounds and be one of
    ``choices``; ``None`` is allowed when the field's type allows it."""
    checks = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    if choices is not None:
        checks["choices"] = tuple(choices)
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"checks": checks})


def validate(config: Any, prefix: str = "") -> Any:
    """Check every :func:`setting` of ``config`` (nested groups too); returns ``config``.

    Raises:
        ConfigError: naming the key, the value and what it must be.
    """
    for f in dataclasses.fields(config):
        value, key = getattr(config, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            validate(value, f"{key}.")
            continue
        checks = f.metadata.get("checks", {})
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is None or not checks:
                continue
            if "choices" in checks and v not in checks["choices"]:
                raise ConfigError(f"config key {key!r}: {v!r} is not one of {', '.join(map(repr, checks['choices']))}")
            for name, (ok, sign) in _BOUNDS.items():
                if name in checks and not ok(v, checks[name]):
                    raise ConfigError(f"config key {key!r}: {v!r} must be {sign} {checks[name]}")
    return config


def parse_sets(items: Iterable[str]) -> dict[str, Any]:
    """``["a.b=3", "name=x"]`` → ``{"a.b": 3, "name": "x"}`` (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return out


def _nest(overrides: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        parts = key.split(".")
        node = nested
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"config key {key!r} conflicts with a value set for {p!r}")
        if isinstance(value, dict):
            node.setdefault(parts[-1], {}).update(_nest(value))
        else:
            node[parts[-1]] = value
    return nested


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any or value is None and (type(None) in args):
        return value
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"config key {key!r}: {value!r} is not a {annotation}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, key) for v in value]
        return tuple(items) if origin is tuple else items
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if annotation is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise ConfigError(f"config key {key!r}: expected {annotation.__name__}, got {value!r}")
    return value


def merge(config: Any, overrides: dict[str, Any], prefix: str = "") -> Any:
    """A copy of dataclass ``config`` with ``overrides`` applied; unknown keys raise."""
    hints = typing.get_type_hints(type(config))
    fields = {f.name for f in dataclasses.fields(config)}
    changes: dict[str, Any] = {}
    for key, value in _nest(overrides).items():
        full = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"unknown config key {full!r}; valid keys: {', '.join(sorted(prefix + f for f in fields))}")
        current = getattr(config, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {full!r} is a group; set its fields as {full}.<field>=value")
            changes[key] = merge(current, value, prefix=f"{full}.")
        else:
            changes[key] = _coerce(value, hints[key], full)
    return dataclasses.replace(config, **changes)


def to_dict(config: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config), default=list))


def config_hash(*parts: Any) -> str:
    """sha256 of the canonical JSON of ``parts`` (dataclasses converted to dicts)."""
    canon = [to_dict(p) if dataclasses.is_dataclass(p) else p for p in parts]
    return hashlib.sha256(json.dumps(canon, sort_keys=True, default=str).encode()).hexdigest()
