"""The generic training loop (``regbench train``) of every :class:`~regbench.methods.base.TrainableMethod`.

The trainer owns data, optimiser, schedule, mixed precision, checkpoints and curves; the method
owns its network, loss and parameter groups. Per epoch: random protocol deformations of the train
split (seeded by ``(seed, epoch, index)``), then validation on the val split with the protocol's
fixed deformations, scored by the method's own ``register`` exactly as evaluation scores it.

Files in ``out_dir``: ``last.pt`` (full training state, written every epoch and every
``checkpoint_every`` steps, resumed from automatically), ``best.pt`` (the weights with the lowest
val RMSE, the file evaluation loads with ``--set weights=PATH``), ``curves.csv`` (long format:
step, epoch, name, value) and ``run.json`` (what was trained, with which settings).
"""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
import yaml

from .. import config as cfg
from .. import metrics, registry, tracking
from ..datasets.base import PairDataset
from ..device import select_device
from ..errors import UnknownNameError
from ..methods.base import TrainableMethod
from ..protocol import get_protocol
from ..store import atomic_write, atomic_write_text
from .data import DeformedPairs, sample_to_pair

LogFn = Callable[[dict[str, float], int], None]

SCHEDULES = ("plateau", "cosine")

#: settings that may change when a run is resumed (they do not change what is computed)
RESUMABLE_CHANGES = ("epochs", "num_workers", "checkpoint_every")


@dataclass
class TrainConfig:
    """Training settings (SOMA's recipe by default). Merge: defaults < recipe ``train:`` < ``--set``."""

    epochs: int = 100
    batch_size: int = 4
    #: None: each parameter group keeps the method's rate; a value rescales every group so that
    #: the largest rate equals it (ratios between groups are kept)
    lr: float | None = None
    weight_decay: float = 1e-4
    #: linear warm-up from 0 over this many epochs (per step)
    warmup_epochs: float = 5.0
    #: after warm-up: "plateau" (SOMA's: multiply every rate by ``plateau_factor`` when val RMSE has
    #: not improved for ``plateau_patience`` epochs) or "cosine" (decay to 0 at the end of ``epochs``)
    schedule: str = "plateau"
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    #: stop after this many epochs without val improvement (0: never)
    early_stop: int = 15
    #: global gradient-norm clip (0: off)
    grad_clip: float = 1.0
    #: "auto" (fp16 + GradScaler on CUDA, none on CPU), "fp16" (CUDA only), "bf16" or "none"
    amp: str = "auto"
    #: protocol whose ranges the random training deformations are drawn from
    protocol: str = "main"
    #: protocol whose fixed deformations validation uses
    val_protocol: str = "main"
    train_split: str = "train"
    val_split: str = "val"
    #: cap on optimiser steps per epoch (None: one pass over the train split)
    steps_per_epoch: int | None = None
    #: validate on the first ``val_limit`` val pairs only (None: all)
    val_limit: int | None = None
    num_workers: int = 0
    seed: int = 0
    #: also write ``last.pt`` every this many steps (0: at epoch ends only)
    checkpoint_every: int = 0
    #: log the mean training loss every this many steps
    log_every: int = 10


def _identity(train_config: dict[str, Any]) -> dict[str, Any]:
    """The training settings that define a run: all but :data:`RESUMABLE_CHANGES`, and the plateau
    rule's when the schedule is not ``plateau`` (they change nothing then)."""
    unused = () if train_config.get("schedule", "plateau") == "plateau" else ("plateau_factor", "plateau_patience")
    return {k: v for k, v in train_config.items() if k not in RESUMABLE_CHANGES + unused}


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device`` (``None``: full precision)."""
    if amp == "auto":
        return torch.float16 if device.type == "cuda" else None
    if amp == "fp16":
        if device.type != "cuda":
            raise cfg.ConfigError("amp=fp16 needs a CUDA device; use amp=bf16 or amp=none on CPU")
        return torch.float16
    if amp == "bf16":
        return torch.bfloat16
    if amp == "none":
        return None
    raise cfg.ConfigError(f"unknown amp mode {amp!r}; use auto, fp16, bf16 or none")


def load_recipe(name: str) -> dict[str, Any]:
    """A training recipe ``methods/recipes/<name>.yaml``: method, dataset, sets, dataset_sets, train."""
    path = registry.cards_root() / "methods" / "recipes" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise UnknownNameError(f"no training recipe {path}; known recipes: {', '.join(known) or 'none'}")
    recipe = yaml.safe_load(path.read_text()) or {}
    unknown = set(recipe) - {"name", "description", "method", "dataset", "sets", "dataset_sets", "train"}
    if unknown:
        raise cfg.ConfigError(f"recipe {path}: unknown keys {sorted(unknown)}")
    return recipe


class Curves:
    """``curves.csv`` in long format (step, epoch, name, value); truncatable to a checkpoint's rows."""

    header = ("step", "epoch", "name", "value")

    def __init__(self, path: Path, keep_rows: int) -> None:
        self.path = path
        rows = []
        if keep_rows and path.exists():
            with path.open() as f:
                rows = list(csv.reader(f))[1 : keep_rows + 1]
        with path.open("w", newline="") as f:
            csv.writer(f).writerows([self.header, *rows])
        self.rows = len(rows)

    def write(self, values: dict[str, float], step: int, epoch: int) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerows([step, epoch, k, repr(float(v))] for k, v in values.items())
        self.rows += len(values)


class Trainer:
    """Trains one method instance on one dataset instance; see the module docstring.

    Args:
        method: a trainable method after ``setup(device, for_training=True)``.
        dataset: the dataset loader (its ``name`` seeds the validation deformations).
        config: training settings.
        out_dir: where checkpoints and curves go.
        log: ``log(metrics, step)`` callback (e.g. an MLflow logger), called besides ``curves.csv``.
        progress: called with (optimiser steps done, total steps) after every step.
        run_info: what is being trained (names and resolved configs); stored in the checkpoints,
            and a resumed run must match it.
    """

    def __init__(
        self,
        method: TrainableMethod,
        dataset: PairDataset,
        config: TrainConfig,
        out_dir: str | Path,
        log: LogFn | None = None,
        run_info: dict[str, Any] | None = None,
        progress: Callable[[int, int], Any] | None = None,
    ) -> None:
        self.method, self.config, self.out_dir = method, config, Path(out_dir)
        self.loggers: list[LogFn] = [log] if log else []
        self.progress = progress
        self.device = method.device
        self.amp_dtype = resolve_amp(config.amp, self.device)
        self.run_info = {**(run_info or {}), "train_config": cfg.to_dict(config)}
        self.train_set = DeformedPairs(dataset, config.train_split, get_protocol(config.protocol), seed=config.seed)
        self.val_set = DeformedPairs(dataset, config.val_split, get_protocol(config.val_protocol), fixed=True, limit=config.val_limit)
        n_batches = len(self.train_set) // config.batch_size
        if n_batches == 0:
            raise cfg.ConfigError(
                f"batch_size={config.batch_size} exceeds the {len(self.train_set)} pairs of split {config.train_split!r}"
            )
        self.steps_per_epoch = min(n_batches, config.steps_per_epoch or n_batches)
        if config.schedule not in SCHEDULES:
            raise cfg.ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, got {config.schedule!r}")

        self.model = method.model
        groups = method.param_groups()
        if config.lr is not None:
            scale = config.lr / max(g["lr"] for g in groups)
            groups = [{**g, "lr": g["lr"] * scale} for g in groups]
        self.optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups]
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=config.plateau_factor, patience=config.plateau_patience
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]

        self.epoch = 0  # the epoch being trained (completed epochs)
        self.step = 0  # optimiser steps so far
        self.step_in_epoch = 0
        self.best = math.inf
        self.bad_epochs = 0
        self.curves: Curves | None = None

    # ---- paths -------------------------------------------------------------------------------
    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    # ---- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "run": self.run_info,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "plateau": self.plateau.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "step_in_epoch": self.step_in_epoch,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
            "curve_rows": self.curves.rows if self.curves else 0,
            "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        }

    def save_last(self) -> None:
        atomic_write(self.last_path, lambda f: torch.save(self.state_dict(), f))

    def load_last(self) -> int:
        """Restore the full training state from ``last.pt`` (refusing a different run's file).

        Returns the number of ``curves.csv`` rows the checkpoint had seen.
        """
        state = torch.load(self.last_path, map_location=self.device, weights_only=True)
        saved, now = dict(state["run"]), dict(self.run_info)
        saved["train_config"], now["train_config"] = _identity(saved["train_config"]), _identity(now["train_config"])
        if saved != now:
            raise cfg.ConfigError(
                f"{self.last_path} belongs to a different run ({json.dumps(saved, sort_keys=True)}); "
                "use another out_dir, or resume=False to start over"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.plateau.load_state_dict(state["plateau"])
        self.scaler.load_state_dict(state["scaler"])
        for key in ("epoch", "step", "step_in_epoch", "best", "bad_epochs"):
            setattr(self, key, state[key])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
        return state["curve_rows"]

    # ---- logging -----------------------------------------------------------------------------
    def log(self, values: dict[str, float], step: int) -> None:
        assert self.curves is not None
        self.curves.write(values, step, self.epoch)
        for log in self.loggers:
            log(values, step)

    # ---- loop --------------------------------------------------------------------------------
    def epoch_order(self, epoch: int) -> list[int]:
        """Sample indices of ``epoch``'s batches (a seeded permutation, cut to whole steps)."""
        perm = np.random.default_rng([self.config.seed, epoch, 1]).permutation(len(self.train_set))
        return perm[: self.steps_per_epoch * self.config.batch_size].tolist()

    def set_lr(self) -> None:
        """Per-step rates: linear warm-up, then cosine decay if asked (the plateau rule acts per epoch)."""
        warmup_steps = self.config.warmup_epochs * self.steps_per_epoch
        if self.step < warmup_steps:
            factor = min(1.0, (self.step + 1) / warmup_steps)
        elif self.config.schedule == "cosine":
            total = max(self.config.epochs * self.steps_per_epoch - warmup_steps, 1)
            factor = 0.5 * (1 + math.cos(math.pi * min(1.0, (self.step - warmup_steps) / total)))
        else:
            return
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One optimiser step on ``batch`` (already on the device); returns its scalar logs."""
        self.set_lr()
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            loss, logs = self.method.training_loss(batch)
        if not torch.isfinite(loss) and not self.scaler.is_enabled():
            raise FloatingPointError(f"training loss is {loss.item()} at step {self.step}; lower the learning rate?")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        max_norm = self.config.grad_clip if self.config.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {"loss": loss.item(), "grad_norm": grad_norm.item(), **logs}

    def to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Val loss (the training loss in eval mode) and the evaluation metrics of ``register``."""
        self.model.eval()
        loader = torch.utils.data.DataLoader(
            self.val_set,
            batch_size=self.config.batch_size,
            num_workers=self.config.num_workers,
            generator=torch.Generator().manual_seed(self.config.seed),  # keeps the global RNG untouched
        )
        losses, rows, index = [], [], 0
        for batch in loader:
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
                loss, _ = self.method.training_loss(self.to_device(batch))
            losses.append(loss.item() * len(batch["sar"]))
            for j in range(len(batch["sar"])):
                pair = sample_to_pair({k: v[j] for k, v in batch.items()}).for_method()
                h, w = pair.shape
                pred = self.method.register(pair).validate((h, w))
                flow = None if pred.failed else pred.to_flow(h, w)
                rows.append(metrics.pair_errors(flow, batch["gt_flow"][j].numpy()))
                index += 1
        self.model.train()
        summary = metrics.summarize(pd.DataFrame(rows))
        out = {"val/loss": sum(losses) / len(self.val_set), "val/rmse": summary["r_avg"], "val/rmse_median": summary["rmse_median"]}
        out.update({f"val/{k}": summary[k] for k in ("cmr_1px", "cmr_3px", "cmr_5px", "fail_rate")})
        return out

    def end_epoch(self, val: dict[str, float]) -> bool:
        """Schedule, best checkpoint and early stopping after an epoch; True to stop."""
        rmse = val["val/rmse"]
        if self.config.schedule == "plateau" and self.epoch + 1 >= self.config.warmup_epochs:
            self.plateau.step(rmse)
        if rmse < self.best:
            self.best, self.bad_epochs = rmse, 0
            self.method.save_weights(self.best_path)
        else:
            self.bad_epochs += 1
        self.epoch += 1
        self.step_in_epoch = 0
        self.save_last()
        return 0 < self.config.early_stop <= self.bad_epochs

    def fit(self, resume: bool = True) -> Path:
        """Train to the end (resuming from ``last.pt`` if asked and present); returns ``best.pt``."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume and self.last_path.exists():
            curve_rows = self.load_last()
        else:
            curve_rows = 0
            self.best_path.unlink(missing_ok=True)  # a stale best.pt must not outlive a fresh start
        self.curves = Curves(self.out_dir / "curves.csv", keep_rows=curve_rows)
        atomic_write_text(self.out_dir / "run.json", json.dumps(self.run_info, indent=1, sort_keys=True))
        self.model.train()
        stop = self.epoch > 0 and 0 < self.config.early_stop <= self.bad_epochs
        while self.epoch < self.config.epochs and not stop:
            t0 = time.perf_counter()
            self.train_set.set_epoch(self.epoch)
            order = self.epoch_order(self.epoch)[self.step_in_epoch * self.config.batch_size :]
            loader = torch.utils.data.DataLoader(
                self.train_set,
                batch_size=self.config.batch_size,
                sampler=order,
                num_workers=self.config.num_workers,
                generator=torch.Generator().manual_seed(self.config.seed),  # keeps the global RNG untouched
                pin_memory=self.device.type == "cuda",
            )
            window: list[dict[str, float]] = []
            for batch in loader:
                window.append(self.train_step(self.to_device(batch)))
                self.step += 1
                if self.progress:
                    self.progress(self.step, self.config.epochs * self.steps_per_epoch)
                self.step_in_epoch += 1
                if self.step % self.config.log_every == 0 or self.step_in_epoch == self.steps_per_epoch:
                    logs = {f"train/{k}": float(np.mean([w[k] for w in window])) for k in window[0]}
                    self.log(logs | {"train/lr": self.optimizer.param_groups[0]["lr"]}, self.step)
                    window = []
                if self.config.checkpoint_every and self.step % self.config.checkpoint_every == 0 and self.step_in_epoch < self.steps_per_epoch:
                    self.save_last()
            val = self.validate()
            self.log(val | {"time/epoch_s": time.perf_counter() - t0}, self.step)
            stop = self.end_epoch(val)
        if not self.best_path.exists():
            raise RuntimeError(f"validation RMSE was never finite (best {self.best}); no {self.best_path} written")
        return self.best_path


def train(
    method: str | None = None,
    dataset: str | None = None,
    sets: dict[str, Any] | None = None,
    train_sets: dict[str, Any] | None = None,
    dataset_sets: dict[str, Any] | None = None,
    out_dir: str | Path | None = None,
    results_dir: str | Path = "results",
    device: str = "auto",
    resume: bool = True,
    recipe: str | None = None,
    log_mlflow: bool = True,
    log: LogFn | None = None,
    progress: Callable[[int, int], Any] | None = None,
) -> Path:
    """Train registry method ``method`` on registry dataset ``dataset``; returns the best weights' path.

    ``recipe`` names ``methods/recipes/<recipe>.yaml``, which supplies method, dataset and settings
    (arguments given here override it). Settings merge: ``TrainConfig`` defaults < recipe
    ``train:`` < ``train_sets``; method config: card < recipe ``sets:`` < ``sets``.
    ``out_dir`` defaults to ``<results_dir>/train/<method>-<dataset>`` (where ``regbench.grid``
    looks); curves go to ``curves.csv`` there, to ``log`` and, with ``log_mlflow``, to the MLflow
    store of ``results_dir``.
    """
    rec = load_recipe(recipe) if recipe else {}
    method = method or rec.get("method")
    dataset = dataset or rec.get("dataset")
    if not method or not dataset:
        raise cfg.ConfigError("train needs a method and a dataset (or a recipe that names them)")
    config = cfg.merge(cfg.merge(TrainConfig(), rec.get("train") or {}), train_sets or {})
    method_sets = {**(rec.get("sets") or {}), **(sets or {})}
    data_sets = {**(rec.get("dataset_sets") or {}), **(dataset_sets or {})}
    model, _ = registry.build_method(method, method_sets)
    if not isinstance(model, TrainableMethod):
        raise cfg.ConfigError(f"method {method!r} is not trainable")
    data = registry.build_dataset(dataset, data_sets)
    torch.manual_seed(config.seed)  # the network's initialisation
    model.setup(select_device(device), for_training=True)
    run_info = {
        "method": method,
        "method_config": cfg.to_dict(model.config),
        "dataset": dataset,
        "dataset_config": cfg.to_dict(data.config),
        "recipe": recipe,
    }
    out = Path(out_dir) if out_dir else Path(results_dir) / "train" / f"{method}-{dataset}"
    trainer = Trainer(model, data, config, out, log=log, run_info=run_info, progress=progress)
    if not log_mlflow:
        return trainer.fit(resume=resume)
    with tracking.training_run(f"train:{recipe or method}@{dataset}", trainer.run_info, results_dir) as mlflow_log:
        trainer.loggers.append(mlflow_log)
        best = trainer.fit(resume=resume)
        tracking.log_training_outputs(out, best)
    return best
