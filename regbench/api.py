"""Library entry points users import: ``evaluate`` and the README's ``demo``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from . import registry
from .runner import RunResult, evaluate

__all__ = ["evaluate", "demo", "weight_free_methods", "RunResult"]


def weight_free_methods() -> list[str]:
    """Registered methods (variants included) whose card does not declare ``needs_weights: true``."""
    out = []
    for name in registry.names("method"):
        spec = registry.method(name)
        chain = [spec.card] + [registry.cards("method").get(spec.card.get("base", ""), {})]
        if not any(c.get("needs_weights") for c in chain) and not spec.card.get("demo") is False:
            out.append(name)
    return out


def demo(results_dir: str | Path = "results", limit: int | None = None, log_mlflow: bool = True,
         echo: Callable[[str], Any] = print) -> list[dict[str, Any]]:
    """Evaluate every weight-free method on the synthetic test split (``main`` protocol)."""
    rows = []
    for name in weight_free_methods():
        echo(f"evaluating {name} on synthetic/test …")
        result: RunResult = evaluate(name, "synthetic", "test", "main", limit=limit, results_dir=results_dir,
                                     log_mlflow=log_mlflow)
        rows.append(result.record | result.summary)
    return rows
