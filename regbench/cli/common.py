"""What every verb shares: the one spelling of each option, ``--json`` output, tables, progress bars.

Options (the same concept is the same option in every verb that takes it):
``--method/-m``, ``--dataset/-d``, ``--root``, ``--split``, ``--protocol``, ``--limit``,
``--results``, ``--device``, ``--seed``, ``--set`` (method config), ``--data-set`` (dataset
config), ``--json``. Only click and the standard library are imported here, so that
``regbench --help`` answers without loading torch.
"""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import click

from .. import config as cfg


class LimitType(click.ParamType):
    """A positive number of pairs, or ``all``."""

    name = "N|all"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | None:
        if value is None or isinstance(value, int) and value > 0:
            return value
        if str(value).lower() == "all":
            return None
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n <= 0:
            self.fail(f"{value!r} is not a positive number of pairs (or 'all')", param, ctx)
        return n


LIMIT = LimitType()


def method_option(required: bool = True) -> Callable:
    return click.option("--method", "-m", required=required, help="method or variant name (regbench list methods)")


def dataset_option(default: str | None = "synthetic", required: bool = False) -> Callable:
    return click.option("--dataset", "-d", default=default, required=required, show_default=default is not None,
                   help="dataset name (regbench list datasets)")


root_option = click.option("--root", default=None,
                      help="dataset folder (else $REGBENCH_DATA/<dataset> or the user config file)")
split_option = click.option("--split", default="test", show_default=True, help="dataset split")
protocol_option = click.option("--protocol", default="main", show_default=True,
                          help="deformation protocol: main | relaxed | none (regbench list protocols)")
results_option = click.option("--results", default="results", show_default=True,
                         help="results folder (cache, records, the default MLflow store)")
device_option = click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")


def seed_option(default: int | None = 0, help: str = "run seed") -> Callable:
    return click.option("--seed", default=default, show_default=default is not None, type=int, help=help)


set_option = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="method config override (repeatable; dotted keys for nested groups)")
data_set_option = click.option("--data-set", "data_sets", multiple=True, metavar="KEY=VALUE",
                          help="dataset config override (repeatable)")
mlflow_later_option = click.option(
    "--mlflow-later", is_flag=True,
    help="if the MLflow store is unreachable, compute anyway and keep results on disk for `regbench log`")
json_option = click.option("--json", "as_json", is_flag=True,
                      help="print one JSON document on stdout (logs and progress go to stderr)")


def limit_option(default: int | None = None, what: str = "pairs spread evenly over the split") -> Callable:
    return click.option("--limit", type=LIMIT, default=default, show_default=default is not None,
                   help=f"number of {what} (a positive number, or all)")


def parse_sets(items: tuple[str, ...]) -> dict[str, Any]:
    """``--set key=value`` options as a dict; a malformed one is a usage error naming it."""
    try:
        return cfg.parse_sets(items)
    except cfg.ConfigError as e:
        raise click.BadParameter(str(e)) from e


def dataset_sets(data_sets: tuple[str, ...], root: str | None) -> dict[str, Any]:
    """The dataset overrides of ``--data-set`` and ``--root``."""
    return parse_sets(data_sets) | ({"root": root} if root else {})


# ----------------------------------------------------------------------------------------- output
def log(message: str, as_json: bool = False) -> None:
    """A line for people: stdout, or stderr when stdout carries the JSON document."""
    click.echo(message, err=as_json)


def emit_json(obj: Any) -> None:
    from ..store import jsonable

    click.echo(json.dumps(jsonable(obj), indent=1, allow_nan=False))


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """An aligned text table; metric columns get their header with unit and fixed decimals
    (``regbench.metrics.DISPLAY``), numbers are right-aligned."""
    from ..metrics import DISPLAY, format_value

    def cell(col: str, value: Any) -> str:
        if value is None or value == "":
            return "—"
        if col in DISPLAY and isinstance(value, (int, float)):
            return format_value(float(value), DISPLAY[col][2])
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    heads = [DISPLAY[c][0] if c in DISPLAY else c for c in columns]
    body = [[cell(c, r.get(c)) for c in columns] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(heads)]
    numeric = [all(_is_number(b[i]) for b in body) and bool(body) for i in range(len(columns))]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(heads), line(["-" * w for w in widths]), *(line(b) for b in body)])


def _is_number(text: str) -> bool:
    try:
        float(text.replace("∞", "inf"))
        return True
    except ValueError:
        return text in ("—", "n/a")


SUMMARY_COLUMNS = ["method", "dataset", "protocol", "n_pairs", "cmr_1px", "cmr_3px", "cmr_5px", "r_avg", "r_avg_ok",
                   "fail_rate", "runtime_ms_median"]


@contextmanager
def progress(desc: str, unit: str = "pair", total: int | None = None) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar on stderr with a total and an ETA; yields ``update(done, total)``."""
    from tqdm import tqdm

    with tqdm(desc=desc, unit=unit, total=total, file=sys.stderr, disable=None, dynamic_ncols=True) as bar:
        def update(done: int, new_total: int | None = None) -> None:
            if new_total is not None and bar.total != new_total:
                bar.total = new_total
                bar.refresh()
            bar.update(done - bar.n)

        yield update
