"""Name → implementation: built-in tables, YAML cards (variants are data) and plugin entry points.

* ``METHODS`` / ``DATASETS`` map a name to a lazy import path ``"module:Class"``; nothing is
  imported until a name is used, so a missing optional dependency only breaks that one entry.
* Third-party packages add entries through the entry-point groups ``regbench.methods`` and
  ``regbench.datasets``.
* A card ``methods/<name>.yaml`` (or ``datasets/<name>.yaml``) documents an entry and may set
  config defaults; a card with ``base: <other name>`` defines a *variant*: the base entry's class
  with the card's ``config`` merged over the base card's. Merge order of a resolved config:
  dataclass defaults < base card < variant card < ``--set`` overrides.
"""
from __future__ import annotations

import difflib
import importlib
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import yaml

from . import config as cfg
from .errors import UnknownNameError

METHODS: dict[str, str] = {
    "identity": "regbench.methods.identity:Identity",
    "phase_correlation": "regbench.methods.phase_correlation:PhaseCorrelation",
    "soma": "regbench.methods.soma:SOMA",
    "cfog": "regbench.methods.cfog:CFOG",
    "mi": "regbench.methods.classical:MutualInformation",
    "ncc": "regbench.methods.classical:NCC",
    "cfog-pc": "regbench.methods.classical:CFOGPhaseCorrelation",
    "ecc": "regbench.methods.classical:ECC",
    "sift-ransac": "regbench.methods.classical:SIFTRansac",
}

DATASETS: dict[str, str] = {
    "synthetic": "regbench.datasets.synthetic:Synthetic",
    "folder": "regbench.datasets.folder:Folder",
    "sen1_2": "regbench.datasets.sen1_2:Sen1_2",
    "sopatch_sen1_2": "regbench.datasets.sopatch:SOPatch",
    "osdataset": "regbench.datasets.sopatch:OSDataset",
    "gfge_so": "regbench.datasets.gfge_so:GFGESO",
    "qxs_saropt": "regbench.datasets.qxs_saropt:QXSSarOpt",
    "sen12ms": "regbench.datasets.sen12ms:Sen12MS",
    "spacenet6": "regbench.datasets.spacenet6:SpaceNet6",
}

KINDS = {"method": (METHODS, "methods", "regbench.methods"), "dataset": (DATASETS, "datasets", "regbench.datasets")}


def cards_root() -> Path:
    """Folder holding ``methods/`` and ``datasets/`` cards: ``$REGBENCH_CARDS`` or the repository."""
    return Path(os.environ.get("REGBENCH_CARDS", Path(__file__).resolve().parents[1]))


@lru_cache(maxsize=None)
def _cards(kind: str, root: Path) -> dict[str, dict[str, Any]]:
    folder = root / KINDS[kind][1]
    cards: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        card = yaml.safe_load(path.read_text()) or {}
        if not isinstance(card, dict):
            raise ValueError(f"card {path} must be a YAML mapping")
        card.setdefault("name", path.stem)
        card["_path"] = str(path)
        cards[card["name"]] = card
    return cards


def cards(kind: str) -> dict[str, dict[str, Any]]:
    return _cards(kind, cards_root())


def _plugins(kind: str) -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=KINDS[kind][2])}


def names(kind: str) -> list[str]:
    """Every known name of ``kind`` ("method" or "dataset"): built-ins, plugins and variant cards."""
    table = KINDS[kind][0]
    variants = [n for n, c in cards(kind).items() if "base" in c]
    return sorted(set(table) | set(_plugins(kind)) | set(variants))


@dataclass
class Spec:
    """A resolved registry entry: its class, the card chain and the merged card overrides."""

    kind: str
    name: str
    target: str
    card: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)

    def load_class(self) -> type:
        module, _, attr = self.target.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError as e:
            raise ImportError(f"{self.kind} {self.name!r} needs {e.name!r}, which is not installed: {e}") from e

    def resolve_config(self, sets: dict[str, Any] | None = None) -> Any:
        """The typed config: dataclass defaults < cards < ``sets``, validated (:func:`config.validate`)."""
        conf = self.load_class().Config()
        conf = cfg.merge(conf, self.overrides)
        return cfg.validate(cfg.merge(conf, sets or {}))


def get(kind: str, name: str) -> Spec:
    """Resolve ``name`` of ``kind``; unknown names fail with the known ones and close matches."""
    table = {**KINDS[kind][0], **_plugins(kind)}
    all_cards = cards(kind)
    chain: list[dict[str, Any]] = []
    current = name
    while current not in table:
        card = all_cards.get(current)
        if card is None or "base" not in card:
            known = names(kind)
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UnknownNameError(f"unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(known)}")
        chain.append(card)
        current = card["base"]
        if len(chain) > 10:
            raise ValueError(f"{kind} card chain of {name!r} loops")
    if current in all_cards:
        chain.append(all_cards[current])
    overrides: dict[str, Any] = {}
    for card in reversed(chain):  # base first, the named variant last
        overrides = _deep_update(overrides, card.get("config") or {})
    return Spec(kind, name, table[current], chain[0] if chain else {}, overrides)


def _deep_update(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in new.items():
        out[k] = _deep_update(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def method(name: str) -> Spec:
    return get("method", name)


def dataset(name: str) -> Spec:
    return get("dataset", name)


def build_method(name: str, sets: dict[str, Any] | None = None) -> tuple[Any, Spec]:
    """Instantiate method ``name`` with its resolved config; returns (method, spec)."""
    spec = method(name)
    return spec.load_class()(spec.resolve_config(sets)), spec


def build_dataset(name: str, sets: dict[str, Any] | None = None) -> Any:
    """Instantiate dataset ``name`` with its resolved config."""
    spec = dataset(name)
    ds = spec.load_class()(spec.resolve_config(sets))
    ds.name = spec.name  # a variant keeps its own name (it seeds the protocol's deformations)
    return ds


def catalog(kind: str) -> list[dict[str, Any]]:
    """``methods``, ``datasets`` or ``protocols`` as rows: name, base (variants), one-line description."""
    if kind == "protocols":
        from .protocol import PROTOCOLS

        return [{"name": p.name, "tag": p.tag, "description": p.description} for p in PROTOCOLS.values()]
    singular = kind.rstrip("s")
    all_cards = cards(singular)
    return [{"name": n, "base": all_cards.get(n, {}).get("base"),
             "description": " ".join(str(all_cards.get(n, {}).get("description") or "").split())}
            for n in names(singular)]


def resolved_config(kind: str, name: str, sets: dict[str, Any] | None = None) -> dict[str, Any]:
    """The resolved config of a method or dataset (defaults < cards < ``sets``), its target and hash."""
    spec = get(kind, name)
    conf = spec.resolve_config(sets)
    return {"kind": kind, "name": name, "target": spec.target, "config": cfg.to_dict(conf), "hash": cfg.config_hash(conf)}
