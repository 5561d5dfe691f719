"""The generic trainer: seeded data, a loop that learns, exact resume, precision modes, strict config."""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from regbench import geometry, metrics, registry
from regbench.config import merge
from regbench.errors import ConfigError
from regbench.datasets.base import PairDataset
from regbench.methods.base import MethodConfig, TrainableMethod
from regbench.protocol import deform, draw_deformation, get_protocol, pair_seed
from regbench.train import TrainConfig, Trainer, load_recipe, resolve_amp, train
from regbench.train.data import DeformedPairs
from regbench.types import Pair, Prediction

SIZE = 64


class ToyData(PairDataset):
    """Smooth random 64×64 images; SAR and optical are the same picture (aligned)."""

    name = "toy"

    def ids(self, split: str) -> list[str]:
        self.check_split(split)
        return [f"{i:03d}" for i in range({"train": 12, "val": 4, "test": 4}[split])]

    def load(self, split: str, pair_id: str) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(pair_seed("toy", split, pair_id))
        img = cv2.GaussianBlur(rng.random((SIZE, SIZE), dtype=np.float32), (0, 0), 3)
        img = (img - img.min()) / (img.max() - img.min())
        return img, np.repeat(img[..., None], 3, axis=2)


class ToyNet(nn.Module):
    """Stacked images → a global translation (px), with dropout so that RNG state matters."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(4, 8, 5, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2))
        self.head = nn.Linear(8, 2)
        nn.init.zeros_(self.head.weight)
        self.head.bias.data = torch.tensor([1.0, -0.5])  # starts at (8, −4) px

    def forward(self, sar: torch.Tensor, opt: torch.Tensor) -> torch.Tensor:
        return 8.0 * self.head(self.features(torch.cat([sar, opt], dim=1)))  # (B, 2)


class ToyTranslation(TrainableMethod):
    @dataclass
    class Config(MethodConfig):
        lr: float = 0.05

    def setup(self, device: torch.device, for_training: bool = False) -> None:
        self.device = device
        self.net = ToyNet().to(device)

    @property
    def model(self) -> nn.Module:
        return self.net

    def param_groups(self) -> list[dict]:
        return [
            {"params": self.net.head.parameters(), "lr": self.config.lr},
            {"params": self.net.features.parameters(), "lr": self.config.lr / 2},
        ]

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        t = self.net(batch["sar"], batch["opt"])
        err = (t[:, None, None, :] - batch["gt_flow"]).abs()
        return err.mean(), {"shift_px": t.norm(dim=1).mean().item()}

    def register(self, pair: Pair) -> Prediction:
        sar = torch.from_numpy(pair.sar)[None, None]
        opt = torch.from_numpy(pair.opt).permute(2, 0, 1)[None]
        with torch.no_grad():
            tx, ty = self.net(sar.to(self.device), opt.to(self.device))[0].tolist()
        return Prediction(matrix=np.array([[1.0, 0, tx], [0, 1, ty], [0, 0, 1]]))


def make_method(seed: int = 0) -> ToyTranslation:
    method = ToyTranslation()
    torch.manual_seed(seed)
    method.setup(torch.device("cpu"), for_training=True)
    return method


def read_curves(path: Path) -> list[tuple[str, str, str]]:
    with path.open() as f:
        return [(r["step"], r["name"], r["value"]) for r in csv.DictReader(f) if not r["name"].startswith("time/")]


def run(out: Path, log=None, resume: bool = True, **overrides) -> Path:
    config = merge(TrainConfig(), {"epochs": 3, "batch_size": 4, "warmup_epochs": 1, "log_every": 1, **overrides})
    return Trainer(make_method(), ToyData(), config, out, log=log, run_info={"method": "toy"}).fit(resume=resume)


def test_train_samples_are_seeded_and_change_every_epoch() -> None:
    data = DeformedPairs(ToyData(), "train", get_protocol("main"), seed=7)
    first = data[2]
    assert first["sar"].shape == (1, SIZE, SIZE) and first["opt"].shape == (3, SIZE, SIZE)
    assert first["gt_flow"].shape == (SIZE, SIZE, 2)
    assert torch.equal(first["sar"], data[2]["sar"])
    data.set_epoch(1)
    assert not torch.allclose(first["gt_flow"], data[2]["gt_flow"])
    other_seed = DeformedPairs(ToyData(), "train", get_protocol("main"), seed=8)
    assert not torch.allclose(first["gt_flow"], other_seed[2]["gt_flow"])
    # the flow is the SAR→optical map: sampling the aligned image along it gives the deformed SAR
    sar0, _ = ToyData().load("train", data.ids[2])
    data.set_epoch(0)
    rewarped = geometry.warp_flow(sar0, first["gt_flow"].numpy())
    inner = slice(SIZE // 4, 3 * SIZE // 4)
    assert np.abs(rewarped - first["sar"][0].numpy())[inner, inner].max() < 1e-4


def test_val_samples_use_the_fixed_protocol_deformation() -> None:
    data = DeformedPairs(ToyData(), "val", get_protocol("main"), seed=3, fixed=True)
    data.set_epoch(5)
    sar0, _ = ToyData().load("val", "001")
    sar, gt = deform(sar0, draw_deformation(get_protocol("main"), "toy", "val", "001"))
    sample = data[1]
    np.testing.assert_array_equal(sample["sar"][0].numpy(), sar)
    np.testing.assert_allclose(sample["gt_flow"].numpy(), geometry.matrix_to_flow(gt, SIZE, SIZE), atol=1e-5)


def test_loop_reduces_the_loss_and_writes_checkpoints(tmp_path: Path) -> None:
    logged: list[tuple[dict, int]] = []
    best = run(tmp_path, log=lambda m, s: logged.append((m, s)), protocol="none", val_protocol="none")
    assert best == tmp_path / "best.pt" and best.exists() and (tmp_path / "last.pt").exists()
    curves = read_curves(tmp_path / "curves.csv")
    loss = [float(v) for _, n, v in curves if n == "train/loss"]
    rmse = [float(v) for _, n, v in curves if n == "val/rmse"]
    assert len(loss) == 9 and len(rmse) == 3
    assert loss[-1] < 0.7 * loss[0] and rmse[-1] < rmse[0]
    assert [s for _, s in logged] == sorted(s for _, s in logged) and logged[-1][1] == 9
    weights = torch.load(best, weights_only=True)
    assert set(weights) == {"config", "state_dict"} and "head.bias" in weights["state_dict"]


def test_validation_scores_like_evaluation(tmp_path: Path) -> None:
    method, data = make_method(), ToyData()
    trainer = Trainer(method, data, merge(TrainConfig(), {"val_limit": 3}), tmp_path)
    proto = get_protocol("main")
    rmse = []
    for pair_id in data.ids("val")[:3]:  # the evaluation path: fixed deformation, register, pair_errors
        sar, opt = data.load("val", pair_id)
        moved, gt = deform(sar, draw_deformation(proto, "toy", "val", pair_id))
        pred = method.register(Pair(moved, opt, meta={"pair_id": pair_id}))
        rmse.append(metrics.pair_errors(pred.to_flow(SIZE, SIZE), geometry.matrix_to_flow(gt, SIZE, SIZE))["rmse"])
    val = trainer.validate()
    assert val["val/rmse"] == pytest.approx(np.mean(rmse), rel=1e-5)
    assert method.model.training  # back in training mode


class Interrupt(Exception):
    pass


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    run(tmp_path / "a", checkpoint_every=2)

    def crash_at_step_5(metrics: dict, step: int) -> None:
        if step == 5:
            raise Interrupt

    with pytest.raises(Interrupt):
        run(tmp_path / "b", log=crash_at_step_5, checkpoint_every=2)
    state = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert (state["epoch"], state["step"], state["step_in_epoch"]) == (1, 4, 1)
    run(tmp_path / "b", checkpoint_every=2)  # a fresh process: new method instance, resumes

    a, b = (torch.load(tmp_path / d / "last.pt", weights_only=True) for d in "ab")
    assert a["step"] == b["step"] == 9
    for name, tensor in a["model"].items():
        torch.testing.assert_close(tensor, b["model"][name], rtol=1e-6, atol=1e-7, msg=name)
    assert read_curves(tmp_path / "a" / "curves.csv") == read_curves(tmp_path / "b" / "curves.csv")

    with pytest.raises(ConfigError, match="different run"):
        run(tmp_path / "b", lr=1e-3)


def test_precision_modes_on_cpu(tmp_path: Path) -> None:
    cpu = torch.device("cpu")
    assert resolve_amp("auto", cpu) is None
    assert resolve_amp("bf16", cpu) is torch.bfloat16
    with pytest.raises(ConfigError, match="CUDA"):
        resolve_amp("fp16", cpu)
    run(tmp_path / "none", epochs=1, amp="none")
    run(tmp_path / "bf16", epochs=1, amp="bf16")
    losses = [float(v) for _, n, v in read_curves(tmp_path / "bf16" / "curves.csv") if n == "train/loss"]
    assert len(losses) == 3 and np.isfinite(losses).all()


def test_learning_rate_schedules(tmp_path: Path) -> None:
    """Warm-up then cosine decay to 0 at the last step; the plateau rule halves rates per epoch."""
    rates = {}
    for schedule in ("cosine", "plateau"):
        run(tmp_path / schedule, epochs=4, schedule=schedule, lr=0.1, plateau_patience=0, plateau_factor=0.5,
            protocol="none", val_protocol="none")
        rates[schedule] = [float(v) for _, n, v in read_curves(tmp_path / schedule / "curves.csv") if n == "train/lr"]
    cos, plateau = rates["cosine"], rates["plateau"]  # rate of step i (3 per epoch, 1 warm-up epoch)
    assert len(cos) == 12 and cos[:4] == pytest.approx([0.1 / 3, 0.2 / 3, 0.1, 0.1])
    assert cos[7] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 4 / 9)))  # 4 of 9 decay steps done
    assert all(a > b for a, b in zip(cos[3:], cos[4:])) and cos[-1] < 0.04 * 0.1
    assert plateau[:3] == cos[:3]
    assert all(any(r == pytest.approx(0.1 * 0.5**k) for k in range(5)) for r in plateau[3:])
    with pytest.raises(ConfigError, match="schedule"):
        run(tmp_path / "bad", schedule="linear")
    # the plateau rule's settings define a plateau run only
    common = dict(epochs=4, lr=0.1, plateau_factor=0.5, protocol="none", val_protocol="none")
    run(tmp_path / "cosine", schedule="cosine", plateau_patience=7, **common)  # finished: resumes, nothing to do
    with pytest.raises(ConfigError, match="different run"):
        run(tmp_path / "plateau", schedule="plateau", plateau_patience=7, **common)


def test_bad_settings_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="epochz"):
        train("identity", "synthetic", train_sets={"epochz": 3}, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="not trainable"):
        train("identity", "synthetic", out_dir=tmp_path)
    with pytest.raises(ConfigError, match="exceeds"):
        run(tmp_path, batch_size=13)


@pytest.mark.parametrize("path", sorted((registry.cards_root() / "methods" / "recipes").glob("*.yaml")), ids=lambda p: p.stem)
def test_recipes_resolve(path: Path) -> None:
    recipe = load_recipe(path.stem)
    merge(TrainConfig(), recipe.get("train") or {})
    registry.method(recipe["method"]).resolve_config(recipe.get("sets"))
    registry.dataset(recipe["dataset"]).resolve_config(recipe.get("dataset_sets"))


def test_cli_train_logs_curves_to_mlflow(tmp_path: Path, monkeypatch) -> None:
    import mlflow
    from click.testing import CliRunner

    from regbench import tracking
    from regbench.cli import main

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setitem(registry.METHODS, "toy", "test_trainer:ToyTranslation")
    monkeypatch.setitem(registry.DATASETS, "toy", "test_trainer:ToyData")
    results, out = tmp_path / "results", tmp_path / "out"
    args = ["train", "-m", "toy", "-d", "toy", "--train-set", "epochs=2", "--train-set", "warmup_epochs=1",
            "--train-set", "log_every=1", "--out", str(out), "--results", str(results)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert f"best weights: {out / 'best.pt'}" in res.output and (out / "best.pt").is_file()
    mlflow.set_tracking_uri(tracking.tracking_uri(results))
    run = mlflow.search_runs(experiment_names=["regbench-train"], output_format="list")[0]
    assert "val/rmse" in run.data.metrics and run.data.tags["regbench.best_weights"] == str((out / "best.pt").resolve())
    bad = CliRunner().invoke(main, ["train", "-m", "toy", "-d", "toy", "--train-set", "epoch=2", "--no-mlflow"])
    assert bad.exit_code == 1 and "unknown config key 'epoch'" in bad.output
