"""The ``regbench`` command: each verb parses options and calls one library function."""
from __future__ import annotations

import math
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import click

from . import config as cfg
from .cli_common import parse_cli_sets
from . import registry
from .cli_grid import grid_cmd, leaderboard_cmd
from .data_cli import data as data_group


def format_summary(rows: list[dict[str, Any]]) -> str:
    """A fixed-width table of run summaries (the same numbers that are logged)."""
    import pandas as pd

    cols = ["method", "dataset", "protocol", "n_pairs", "cmr_1px", "cmr_3px", "cmr_5px", "r_avg", "r_avg_ok",
            "fail_rate", "runtime_ms_median"]
    df = pd.DataFrame(rows)[cols]
    fmt = {c: (lambda v: f"{v:.3f}" if isinstance(v, float) and math.isfinite(v) else str(v)) for c in cols}
    fmt["n_pairs"] = lambda v: str(int(v))
    return df.to_string(index=False, formatters=fmt)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Show errors the user can fix (names, configs, data, weights) as one message, not a traceback."""
    from .datasets.base import DatasetError
    from .methods.base import WeightsMissingError

    try:
        yield
    except (registry.UnknownNameError, cfg.ConfigError, DatasetError, WeightsMissingError, KeyError) as e:
        raise click.ClickException(str(e)) from e


@click.group()
def main() -> None:
    """regbench: benchmark SAR–optical registration methods on fixed, shared test deformations."""


@main.command()
@click.option("--method", "-m", required=True, help="method or variant name (regbench list methods)")
@click.option("--dataset", "-d", default="synthetic", show_default=True)
@click.option("--split", default="test", show_default=True)
@click.option("--protocol", default="main", show_default=True, help="main | relaxed | none")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--limit", type=int, default=None, help="evaluate N pairs spread evenly over the split")
@click.option("--set", "sets", multiple=True, help="method config override key=value (repeatable)")
@click.option("--root", default=None, help="dataset root (else $REGBENCH_DATA/<dataset> or the user config file)")
@click.option("--data-set", "data_sets", multiple=True, help="dataset config override key=value")
@click.option("--results", default="results", show_default=True, help="results folder (cache, records, MLflow)")
@click.option("--no-mlflow", is_flag=True, help="do not log to MLflow (the JSON record is still written)")
@click.option("--workers", default=0, show_default=True, help="DataLoader workers reading pairs")
@click.option("--seed", default=0, show_default=True)
def run(method, dataset, split, protocol, device, limit, sets, root, data_sets, results, no_mlflow, workers, seed) -> None:
    """Evaluate one method on one dataset split and print its summary."""
    from tqdm import tqdm

    from .runner import evaluate

    dsets = parse_cli_sets(data_sets) | ({"root": root} if root else {})
    with _user_errors(), tqdm(desc=f"{method} on {dataset}/{split}", unit="pair", disable=None) as bar:
        result = evaluate(method, dataset, split, protocol, device=device, limit=limit, sets=parse_cli_sets(sets),
                          dataset_sets=dsets, results_dir=results, log_mlflow=not no_mlflow, seed=seed,
                          num_workers=workers, progress=lambda n: bar.update(n - bar.n))
    click.echo(format_summary([result.record | result.summary]))
    click.echo(f"per-pair table and record: {result.run_dir}")
    if "mlflow_run_id" in result.record:
        click.echo(f"MLflow run: {result.record['mlflow_run_id']}")


@main.command()
@click.option("--method", "-m", default=None, help="trainable method or variant (or from --recipe)")
@click.option("--dataset", "-d", default=None, help="dataset whose train/val splits are used (or from --recipe)")
@click.option("--recipe", default=None, help="methods/recipes/<name>.yaml: method, dataset and settings")
@click.option("--set", "sets", multiple=True, help="method config override key=value")
@click.option("--train-set", "train_sets", multiple=True, help="training setting key=value (epochs, batch_size, lr…)")
@click.option("--data-set", "data_sets", multiple=True, help="dataset config override key=value")
@click.option("--out", default=None, help="checkpoint folder (default results/train/<method>-<dataset>)")
@click.option("--device", default="auto", show_default=True)
@click.option("--no-resume", is_flag=True, help="start over instead of resuming from last.pt")
@click.option("--results", default="results", show_default=True, help="where the MLflow store lives")
@click.option("--no-mlflow", is_flag=True)
def train(method, dataset, recipe, sets, train_sets, data_sets, out, device, no_resume, results, no_mlflow) -> None:
    """Train a learned method; resumes after an interruption; the best weights are evaluable as-is."""
    from contextlib import nullcontext

    from . import tracking
    from .trainer import train as run_train

    args = dict(method=method, dataset=dataset, sets=parse_cli_sets(sets), train_sets=parse_cli_sets(train_sets),
                dataset_sets=parse_cli_sets(data_sets), out_dir=out, device=device, resume=not no_resume, recipe=recipe)
    name = f"train:{recipe or method}@{dataset or 'recipe'}"
    with _user_errors(), (nullcontext(None) if no_mlflow else tracking.training_run(name, args, results)) as log:
        best = run_train(**args, log=log)
        if log is not None:
            tracking.log_training_outputs(best.parent, best)
    click.echo(f"best weights: {best}  (evaluate with --set weights={best})")


@main.command("list")
@click.argument("kind", type=click.Choice(["methods", "datasets", "protocols"]))
def list_(kind: str) -> None:
    """List the registered methods, datasets or protocols."""
    if kind == "protocols":
        from .protocol import PROTOCOLS

        for p in PROTOCOLS.values():
            click.echo(f"{p.name:10s} {p.tag:12s} {p.description}")
        return
    singular = kind[:-1]
    cards = registry.cards(singular)
    for name in registry.names(singular):
        card = cards.get(name, {})
        base = f"[variant of {card['base']}] " if "base" in card else ""
        text = " ".join(str(card.get("description") or "").split())
        line = f"{base}{text}"
        click.echo(f"{name:24s} {line if len(line) <= 100 else line[:99] + '…'}")


@main.command("config")
@click.option("--method", "-m", default=None)
@click.option("--dataset", "-d", default=None)
@click.option("--set", "sets", multiple=True)
def config_(method: str | None, dataset: str | None, sets: tuple[str, ...]) -> None:
    """Print the resolved config (defaults < card < --set) of a method or dataset, and its hash."""
    import yaml

    if bool(method) == bool(dataset):
        raise click.UsageError("give exactly one of --method or --dataset")
    spec = registry.method(method) if method else registry.dataset(dataset)  # type: ignore[arg-type]
    resolved = spec.resolve_config(parse_cli_sets(sets))
    click.echo(yaml.safe_dump(cfg.to_dict(resolved), sort_keys=False).rstrip())
    click.echo(f"# {spec.kind} {spec.name} -> {spec.target}; config hash {cfg.config_hash(resolved)[:12]}")


@main.command()
@click.option("--results", default="results", show_default=True)
@click.option("--limit", type=int, default=50, show_default=True, help="pairs per method (0: all 200)")
@click.option("--no-mlflow", is_flag=True)
def demo(results: str, limit: int, no_mlflow: bool) -> None:
    """Evaluate the weight-free methods on the embedded synthetic test split and print the table."""
    from .api import demo as run_demo

    rows = run_demo(results_dir=results, limit=limit or None, log_mlflow=not no_mlflow, echo=click.echo)
    click.echo(format_summary(rows))


@main.group()
def bench() -> None:
    """Benchmarks that print speed and memory figures (not tests)."""


@bench.command("harness")
@click.option("--dataset", default="synthetic-512", show_default=True)
@click.option("--pairs", default=50, show_default=True)
def bench_harness(dataset: str, pairs: int) -> None:
    """The harness' own cost per pair (load, deform, cache, score, log), excluding the method."""
    from .bench import bench_harness as run_bench

    run_bench(dataset=dataset, n_pairs=pairs, echo=click.echo)


@bench.command("cfog")
@click.option("--size", default=512, show_default=True)
@click.option("--points", default=200, show_default=True, help="control points")
@click.option("--repeats", default=7, show_default=True)
def bench_cfog(size: int, points: int, repeats: int) -> None:
    """CFOG stages on one pair, its FFT matching beside the per-channel cv2.matchTemplate reference."""
    from .bench_cfog import bench_cfog as run_bench

    run_bench(size=size, n_points=points, repeats=repeats, echo=click.echo)


@bench.command("soma")
@click.option("--size", default=512, show_default=True)
@click.option("--repeats", default=3, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--no-released", is_flag=True, help="skip the released-code kernels comparison")
@click.option("--released-code", type=click.Path(exists=True, file_okay=False),
              help="local checkout of github.com/traslauc/SOMA to time side by side (512 only)")
def bench_soma(size: int, repeats: int, device: str, no_released: bool, released_code: str | None) -> None:
    """SOMA and soma-small inference time and peak memory per pair (random weights: timing only)."""
    from .methods.soma.bench import bench_soma as run_bench

    with _user_errors():
        run_bench(size=size, repeats=repeats, device=device, compare_released=not no_released,
                  released_code=released_code, echo=click.echo)


main.add_command(data_group)
main.add_command(grid_cmd)
main.add_command(leaderboard_cmd)

if __name__ == "__main__":
    sys.exit(main())
