"""Library entry points users import: ``evaluate`` and the README's ``demo``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from . import registry
from .runner import RunResult, evaluate

__all__ = ["evaluate", "demo", "weight_free_methods", "RunResult"]


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
         echo: Callable[[str], Any] = print) -> list[dict[str, Any]]:
    """Evaluate every weight-free demo method on ``limit`` pairs of the synthetic test split (``main``).

    ``limit=None`` uses all 200 pairs; the full table of every method is the synthetic leaderboard
    (``regbench grid leaderboards/synthetic.yaml && regbench leaderboard synthetic``).
    """
    rows = []
    for name in weight_free_methods():
        echo(f"evaluating {name} on synthetic/test …")
        result: RunResult = evaluate(name, "synthetic", "test", "main", limit=limit, results_dir=results_dir,
                                     log_mlflow=log_mlflow)
        rows.append(result.record | result.summary)
    return rows
