"""What users import: evaluate a method, load stored results, register one pair, train, run grids.

>>> from regbench.api import evaluate, load_results, register
>>> result = evaluate("cfog", "synthetic", protocol="main", limit=20)
>>> df = load_results(method="cfog")                      # every stored run, as a DataFrame
>>> pred, warped = register("cfog-coarse", "sar.png", "opt.png")
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import registry
from .runner import RunResult, evaluate
from .types import Pair, Prediction

__all__ = ["RunResult", "demo", "evaluate", "load_results", "register", "weight_free_methods"]


def weight_free_methods() -> list[str]:
    """Methods (variants included) that need no weights and whose card does not say ``demo: false``.

    ``needs_weights`` is inherited from a variant's base card; ``demo`` is not.
    """
    cards = registry.cards("method")
    out = []
    for name in registry.names("method"):
        card = cards.get(name, {})
        base = cards.get(card.get("base", ""), {})
        if not (card.get("needs_weights") or base.get("needs_weights")) and card.get("demo", True):
            out.append(name)
    return out


def demo(results_dir: str | Path = "results", limit: int | None = 50, log_mlflow: bool = True,
         echo: Callable[[str], Any] = print, progress: Callable[[int, int], Any] | None = None) -> list[dict[str, Any]]:
    """Evaluate every weight-free demo method on ``limit`` pairs of the synthetic test split (``main``).

    ``limit=None`` uses all 200 pairs; the full table of every method is the synthetic leaderboard
    (``regbench grid leaderboards/synthetic.yaml && regbench leaderboard synthetic``).
    """
    names = weight_free_methods()
    rows = []
    for k, name in enumerate(names):
        echo(f"evaluating {name} on synthetic/test …")
        result = evaluate(name, "synthetic", "test", "main", limit=limit, results_dir=results_dir, log_mlflow=log_mlflow)
        rows.append(result.record | result.summary)
        if progress:
            progress(k + 1, len(names))
    return rows


def load_results(results_dir: str | Path = "results", method: str | None = None, dataset: str | None = None,
                 split: str | None = None, protocol: str | None = None) -> "pd.DataFrame":  # noqa: F821
    """The stored run records under ``results_dir`` as one row per run: names, config hash, device,
    date and every summary metric (``cmr_1px``…, ``r_avg``, runtimes); filter by any of the names."""
    import pandas as pd

    from .store import iter_records

    rows = []
    for rec in iter_records(results_dir):
        if any(want is not None and rec.get(key) != want
               for key, want in (("method", method), ("dataset", dataset), ("split", split), ("protocol", protocol))):
            continue
        rows.append({k: rec.get(k) for k in ("method", "dataset", "split", "protocol", "seed", "n_pairs", "config_hash",
                                              "weights_checksum", "device_name", "created", "git_commit", "run_dir")}
                    | rec.get("summary", {}))
    return pd.DataFrame(rows)


def _as_image(image: np.ndarray | str | Path, gray: bool) -> np.ndarray:
    """An image argument as float32 in [0, 1]: arrays are scaled by their dtype, paths read from disk."""
    from .datasets.base import read_image

    if isinstance(image, (str, Path)):
        return read_image(Path(image), gray=gray)
    arr = np.asarray(image)
    scale = 65535.0 if arr.dtype == np.uint16 else 255.0 if arr.dtype == np.uint8 else 1.0
    arr = arr.astype(np.float32) / scale
    if gray and arr.ndim == 3:
        from .geometry import to_gray

        arr = to_gray(arr)
    return arr


def register(method: str, sar: np.ndarray | str | Path, opt: np.ndarray | str | Path,
             sets: dict[str, Any] | None = None, device: str = "auto") -> tuple[Prediction, np.ndarray | None]:
    """Register one user pair (no deformation): SAR and optical images as arrays or file paths.

    Returns the prediction (a flow on the SAR grid and/or a SAR→optical matrix) and the SAR image
    resampled onto the optical grid (``None`` when the method failed).
    """
    from .device import select_device
    from .geometry import invert_flow, warp_flow, warp_matrix

    model, _ = registry.build_method(method, sets)
    model.setup(select_device(device))
    pair = Pair(_as_image(sar, gray=True), _as_image(opt, gray=False))
    pred = model.register(pair).validate(pair.shape)
    if pred.failed:
        return pred, None
    if pred.flow is None:  # optical pixel q shows SAR pixel A⁻¹·q
        return pred, warp_matrix(pair.sar, np.linalg.inv(pred.matrix))
    return pred, warp_flow(pair.sar, invert_flow(pred.flow))
