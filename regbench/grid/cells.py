"""Grids: a YAML file of methods × datasets × splits × protocols × seeds, run as idempotent cells.

A grid file (``leaderboards/<name>.yaml``)::

    name: synthetic
    table: main                 # leaderboard layout: main | ablation | generalization | runtime
    methods: [identity, {name: cfog, set: {n_orient: 12}, label: "cfog (12 orientations)"},
              {name: soma, train_on: [sen1_2, gfge_so], checkpoint: "results/train/{method}-{train_dataset}/best.pt"}]
    datasets: [synthetic, {name: synthetic, set: {size: 512}, label: synthetic-512}]
    splits: [test]
    protocols: [main]
    seeds: [0]
    limit: null                 # first N pairs of each split
    shards: 1                   # split each evaluation by pair index over this many workers
    imports: []                 # modules every worker imports first (plugins that register names)
    executor:                   # per-executor defaults (< --profile FILE < --opt key=value)
      submitit: {gpus_per_task: 1, timeout_min: 240, partition: gpu}
      ray: {num_gpus: 1}

A *cell* is one evaluation. Its id hashes the resolved cell (method and its resolved config —
the checkpoint path of a learned cell included, with the file's size and time so that a
retrained or newly trained checkpoint is a new cell —, dataset and its resolved config, split,
protocol version, seed, limit, training dataset), so a changed setting is a new cell and an
unchanged one is never run twice. A worker writes ``<results>/cells/<id16>/result.json`` atomically (with
a copy of the per-pair table) and never touches MLflow; the orchestrating process logs each
finished cell as a child run of one parent run per grid. A cell that raised is recorded as
failed with its reason (rerun it with ``retry_failed``); a worker that died (killed, out of
memory, node lost) leaves no result, so the next run of the grid runs that cell again — and the
runner's prediction cache makes it resume from its last predicted pair.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import itertools
import json
import os
import platform
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import config as cfg
from .. import protocol, registry, store
from ..errors import GridError, UnknownNameError

CELL_FORMAT = 1
TABLES = ("main", "ablation", "generalization", "runtime")
DEFAULT_CHECKPOINT = "results/train/{method}-{train_dataset}/best.pt"


@dataclass
class Cell:
    """One evaluation of a grid (plain data: it travels to workers as JSON)."""

    method: str
    dataset: str
    split: str = "test"
    protocol: str = "main"
    seed: int = 0
    limit: int | None = None
    sets: dict[str, Any] = field(default_factory=dict)
    dataset_sets: dict[str, Any] = field(default_factory=dict)
    train_dataset: str | None = None
    #: row / column labels in tables (not part of the id)
    label: str = ""
    dataset_label: str = ""
    #: execution settings (not part of the id)
    device: str = "auto"
    shards: int = 1
    imports: list[str] = field(default_factory=list)
    #: resolved configs ``{"target", "method_config", "dataset_config"}``; ``None`` when unresolvable
    resolved: dict[str, Any] | None = None
    #: why the cell cannot run (unknown name, bad override); such a cell never reaches a worker
    error: str | None = None

    @property
    def id(self) -> str:
        proto = protocol.PROTOCOLS[self.protocol].tag if self.protocol in protocol.PROTOCOLS else self.protocol
        ident = {"format": CELL_FORMAT, "method": self.method, "dataset": self.dataset, "split": self.split,
                 "protocol": proto, "seed": self.seed, "limit": self.limit, "train_dataset": self.train_dataset}
        ident |= {"resolved": self.resolved} if self.resolved else {"sets": self.sets, "dataset_sets": self.dataset_sets}
        return cfg.config_hash(ident)

    @property
    def name(self) -> str:
        train = f" (trained on {self.train_dataset})" if self.train_dataset else ""
        return f"{self.label}{train} on {self.dataset_label}/{self.split}/{self.protocol} seed {self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Cell":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


@dataclass
class Grid:
    name: str
    spec: dict[str, Any]
    cells: list[Cell]
    path: Path | None = None

    @property
    def table(self) -> str:
        return self.spec.get("table", "main")


def leaderboards_dir() -> Path:
    return registry.cards_root() / "leaderboards"


def grid_path(name_or_path: str | Path) -> Path:
    """A grid file path, or the name of one in ``leaderboards/``."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    return leaderboards_dir() / f"{name_or_path}.yaml"


def import_modules(modules: list[str]) -> None:
    for module in modules:
        importlib.import_module(module)


def _entries(spec: dict[str, Any], key: str, default: list[Any] | None = None) -> list[dict[str, Any]]:
    raw = spec.get(key, default)
    if raw is None:
        raise GridError(f"grid needs a {key!r} list")
    if not isinstance(raw, list):
        raw = [raw]
    out = []
    for item in raw:
        entry = {"name": item} if isinstance(item, str) else dict(item)
        if "name" not in entry:
            raise GridError(f"every entry of {key!r} needs a name: {item!r}")
        out.append(entry)
    return out


def _scalars(spec: dict[str, Any], plural: str, singular: str, default: Any) -> list[Any]:
    value = spec.get(plural, spec.get(singular, default))
    return value if isinstance(value, list) else [value]


def _resolve(cell: Cell) -> Cell:
    """Fill ``resolved`` from the registry, or ``error`` when the cell cannot be resolved."""
    try:
        mspec = registry.method(cell.method)
        dspec = registry.dataset(cell.dataset)
        protocol.get_protocol(cell.protocol)
        cell.resolved = {"target": mspec.target, "method_config": cfg.to_dict(mspec.resolve_config(cell.sets)),
                         "dataset_config": cfg.to_dict(dspec.resolve_config(cell.dataset_sets))}
        if cell.sets.get("weights"):  # a new checkpoint at the same path is a new cell
            path = Path(cell.sets["weights"]).expanduser()
            stat = path.stat() if path.is_file() else None
            cell.resolved["weights_file"] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns} if stat else None
    except (KeyError, ImportError, ValueError, TypeError) as e:  # unknown names, bad overrides
        cell.error = f"{type(e).__name__}: {e}"
    return cell


def expand(spec: dict[str, Any], limit: int | None = None, methods: list[str] | None = None,
           device: str | None = None, sets: dict[str, Any] | None = None, dataset_sets: dict[str, Any] | None = None,
           seeds: list[int] | None = None) -> list[Cell]:
    """The cells of a grid spec, in table order (dataset, split, protocol, method, training set, seed).

    ``limit``, ``device`` and ``seeds`` override the file's values; ``sets`` / ``dataset_sets`` are
    merged over every method / dataset entry's own; ``methods`` keeps only those names or labels.
    """
    unknown = set(spec) - {"name", "title", "description", "table", "methods", "datasets", "splits", "split",
                           "protocols", "protocol", "seeds", "seed", "limit", "shards", "device", "imports",
                           "metrics", "executor"}
    if unknown:
        raise GridError(f"unknown grid keys: {', '.join(sorted(unknown))}")
    if spec.get("table", "main") not in TABLES:
        raise GridError(f"table must be one of {', '.join(TABLES)}, got {spec['table']!r}")
    imports = list(spec.get("imports") or [])
    import_modules(imports)
    method_entries = _entries(spec, "methods")
    if methods:
        unmatched = set(methods) - {m["name"] for m in method_entries} - {m.get("label") for m in method_entries}
        if unmatched:
            raise GridError(f"no method of the grid is named {', '.join(sorted(unmatched))}")
        method_entries = [m for m in method_entries if m["name"] in methods or m.get("label") in methods]
    cells = []
    for d, split, proto, m in itertools.product(
        _entries(spec, "datasets"), _scalars(spec, "splits", "split", "test"),
        _scalars(spec, "protocols", "protocol", "main"), method_entries,
    ):
        extra = set(m) - {"name", "set", "label", "train_on", "checkpoint", "shards", "seeds"}
        if extra or set(d) - {"name", "set", "label"}:
            raise GridError(f"unknown keys in grid entry {m if extra else d!r}")
        for train, seed in itertools.product(m.get("train_on") or [None],
                                             seeds or m.get("seeds") or _scalars(spec, "seeds", "seed", 0)):
            method_sets = dict(m.get("set") or {})
            if train is not None:
                checkpoint = m.get("checkpoint", DEFAULT_CHECKPOINT)
                method_sets["weights"] = checkpoint.format(method=m["name"], train_dataset=train, seed=seed)
            cell = Cell(method=m["name"], dataset=d["name"], split=split, protocol=proto, seed=_int(seed, "seeds"),
                        limit=limit if limit is not None else spec.get("limit"), sets=method_sets | (sets or {}),
                        dataset_sets=dict(d.get("set") or {}) | (dataset_sets or {}), train_dataset=train,
                        label=m.get("label", m["name"]),
                        dataset_label=d.get("label", d["name"]), device=device or spec.get("device", "auto"),
                        shards=int(m.get("shards", spec.get("shards", 1))), imports=imports)
            cells.append(_resolve(cell))
    return cells


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GridError(f"grid key {key!r}: {value!r} is not an integer")
    return value


def grid_names() -> list[str]:
    """The grids in ``leaderboards/`` (every YAML file but ``reported.yaml``)."""
    return sorted(p.stem for p in leaderboards_dir().glob("*.yaml") if p.stem != "reported")


def load_grid(name_or_path: str | Path, limit: int | None = None, methods: list[str] | None = None,
              device: str | None = None, sets: dict[str, Any] | None = None,
              dataset_sets: dict[str, Any] | None = None, seeds: list[int] | None = None) -> Grid:
    """Read a grid file (a path, or the name of a grid in ``leaderboards/``) and expand its cells."""
    path = grid_path(name_or_path)
    if not path.exists():
        if path.parent == leaderboards_dir() and not Path(name_or_path).suffix:
            raise UnknownNameError(f"unknown grid {str(name_or_path)!r}; grids in {path.parent}: {', '.join(grid_names())}")
        raise GridError(f"no grid file {path}")
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise GridError(f"grid file {path} is not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(spec, dict):
        raise GridError(f"grid file {path} must be a YAML mapping (name, methods, datasets, …)")
    return Grid(spec.get("name", path.stem), spec, expand(spec, limit, methods, device, sets, dataset_sets, seeds), path)


# --- results ---------------------------------------------------------------------------------

def cell_dir(results_dir: str | Path, cell_id: str) -> Path:
    return Path(results_dir) / "cells" / cell_id[:16]


def read_result(results_dir: str | Path, cell: Cell) -> dict[str, Any] | None:
    """The stored result of ``cell`` (``status`` ok or failed), or ``None`` if it never finished."""
    path = cell_dir(results_dir, cell.id) / "result.json"
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    return result if result.get("cell_id") == cell.id else None


def _write_result(results_dir: str | Path, cell: Cell, status: str, **fields: Any) -> dict[str, Any]:
    result = {"cell_id": cell.id, "cell": cell.to_dict(), "status": status, **fields,
              "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "worker": {"host": platform.node(), "pid": os.getpid()}}
    store.atomic_write_json(cell_dir(results_dir, cell.id) / "result.json", result)
    return result


def run_cell(cell_dict: dict[str, Any], results_dir: str, shard: tuple[int, int] | None = None,
             mlflow_parent: str | None = None) -> dict[str, Any]:
    """Worker entry point: evaluate one cell (or one shard of it) and store the outcome.

    A whole cell writes its result file; a shard only fills the shared prediction cache. An
    exception in the evaluation is recorded as the cell's failure (and returned), never raised.
    With ``mlflow_parent`` (a tracking server) the worker logs its own child run.
    Returns:
        ``{"status": "ok" | "failed", "error": str | None, ...}``
    """
    from ..runner import evaluate

    cell = Cell.from_dict(cell_dict)
    import_modules(cell.imports)
    try:
        result = evaluate(cell.method, cell.dataset, cell.split, cell.protocol, device=cell.device, limit=cell.limit,
                          sets=cell.sets, dataset_sets=cell.dataset_sets, results_dir=results_dir, seed=cell.seed,
                          log_mlflow=mlflow_parent is not None and not shard, parent_run_id=mlflow_parent, shard=shard,
                          train_dataset=cell.train_dataset)
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
        _write_result(results_dir, cell, "failed", error=error, traceback=traceback.format_exc(limit=8))
        return {"status": "failed", "error": error}
    if shard:
        return {"status": "ok", "error": None, **result.record}
    if cell.resolved and result.record["config"] != cell.resolved["method_config"]:
        error = ("the worker resolved another method config than the orchestrator (different code or cards on "
                 "the worker?)")
        _write_result(results_dir, cell, "failed", error=error, record=result.record)
        return {"status": "failed", "error": error}
    out = cell_dir(results_dir, cell.id)
    out.mkdir(parents=True, exist_ok=True)
    store.atomic_write_text(out / "per_pair.csv", result.table.to_csv(index=False))
    logged = {"mlflow_run_id": result.record["mlflow_run_id"]} if "mlflow_run_id" in result.record else {}
    _write_result(results_dir, cell, "ok", error=None, record=result.record, run_dir=str(result.run_dir), **logged)
    return {"status": "ok", "error": None}


@dataclass
class Task:
    """What an executor runs: a cell, or one shard ``(i, n)`` of it."""

    cell: Cell
    shard: tuple[int, int] | None = None

    @property
    def key(self) -> str:
        return self.cell.id[:16] + (f".shard{self.shard[0]}of{self.shard[1]}" if self.shard else "")
