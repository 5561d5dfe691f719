"""Leaderboards: Markdown + CSV tables and PNG plots, a pure function of stored grid results.

``build(name, spec, results, reported)`` turns the results of a grid's cells (see
:func:`regbench.grid.grid_results`) into tables: values are the mean ± std over seeds, the best
measured value of each column is in bold, and cells that failed or never ran are shown as such
(with their reason), never as numbers. Numbers reported by papers (``leaderboards/reported.yaml``)
appear in their own clearly marked tables, never among measured rows. The header states the
protocol versions, metric definitions, hardware and the dates of the runs — all taken from the
records, so the same records always give the same files.

Layouts (the grid's ``table:``): ``main`` and ``ablation`` (per dataset: CMR@1/3/5, R_avg,
failures, runtime), ``generalization`` (per method: training dataset × test dataset matrices),
``runtime`` (per dataset: runtime median / p90, set-up time, peak memory, device).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from .. import metrics, protocol, store
from .cells import grid_names, leaderboards_dir, load_grid
from .run import grid_results

COLUMNS = {
    "main": ["cmr_1px", "cmr_3px", "cmr_5px", "r_avg", "r_avg_ok", "fail_rate", "runtime_ms_median"],
    "runtime": ["runtime_ms_median", "runtime_ms_p90", "load_s", "peak_mem_mb", "cmr_3px"],
}
COLUMNS["ablation"] = COLUMNS["main"]
CURVE_THRESHOLDS = np.linspace(0.0, 10.0, 201)
METRIC_NOTES = (
    "CMR@k: share of test pairs whose per-pair RMSE of the dense flow error is below k px (failed pairs "
    "count as incorrect). R_avg: mean per-pair RMSE with failures included (∞ once a pair failed); R_avg ok: "
    "the same over pairs that did not fail. fail: share of failed pairs. Runtime: median (p90) time of the "
    "method's `register` call per pair, warm-up excluded, GPU synchronised; set-up (weights loading) apart. "
    "Peak mem: torch-allocated GPU memory on CUDA, resident memory of the process on CPU. "
    "Definitions: docs/metrics.md."
)


@dataclass
class Leaderboard:
    """A built leaderboard: the Markdown text, the CSV table and the data of its plots."""

    name: str
    markdown: str
    table: pd.DataFrame
    plots: dict[str, dict[str, Any]] = field(default_factory=dict)  # file name -> plot data


def _slug(*parts: str) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9.-]+", "_", p).strip("_") for p in parts if p)


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def aggregate(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (method label, training set, dataset label, split, protocol): mean/std over the seeds that ran.

    ``status`` is ``ok`` when every seed ran, else the first other status (``failed``,
    ``missing``, ``invalid``) with its ``error``; ``seeds`` is ``ok/total``.
    """
    rows = []
    for r in results:
        c, rec = r["cell"], r.get("record") or {}
        row = {"method": c["method"], "label": c.get("label") or c["method"], "train_dataset": c.get("train_dataset") or "",
               "dataset": c["dataset"], "dataset_label": c.get("dataset_label") or c["dataset"], "split": c["split"],
               "protocol": c["protocol"], "seed": c["seed"], "status": r["status"], "error": r.get("error") or "",
               "device_name": rec.get("device_name", ""), "n_pairs": rec.get("n_pairs", math.nan)}
        summary = rec.get("summary", {}) if r["status"] == "ok" else {}
        row |= {m: float(summary.get(m, math.nan)) for m in metrics.DISPLAY}
        rows.append(row)
    df = pd.DataFrame(rows)
    keys = ["label", "train_dataset", "dataset_label", "split", "protocol"]
    out = []
    for _, g in df.groupby(keys, sort=False):
        ok = g[g["status"] == "ok"]
        bad = g[g["status"] != "ok"]
        row = g.iloc[0][["method", *keys, "dataset"]].to_dict()
        row |= {"status": "ok" if bad.empty else bad.iloc[0]["status"], "error": "" if bad.empty else bad.iloc[0]["error"],
                "seeds": f"{len(ok)}/{len(g)}", "n_ok": len(ok),
                "device_name": "; ".join(sorted(set(ok["device_name"]))), "n_pairs": ok["n_pairs"].max()}
        for m in metrics.DISPLAY:
            v = ok[m].to_numpy(float)
            row[f"{m}_mean"] = float(np.mean(v)) if len(v) else math.nan
            row[f"{m}_std"] = float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
        out.append(row)
    return pd.DataFrame(out)


def _value_text(row: pd.Series, metric: str, best: float | None) -> str:
    """``mean`` or ``mean ± std`` (from two seeds up), in bold when it is the column's best."""
    kind = metrics.DISPLAY[metric][2]
    mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
    text = metrics.format_value(mean, kind)
    if row["n_ok"] > 1 and not math.isnan(std) and not math.isinf(mean):
        text += f" ± {metrics.format_value(std, kind)}"
    is_best = best is not None and math.isfinite(mean) and float(metrics.format_value(mean, kind)) == best
    return f"**{text}**" if is_best else text


def _best(values: pd.Series, metric: str) -> float | None:
    """The best displayed value of a column (ties share it); ``None`` when no row is worse than another."""
    kind = metrics.DISPLAY[metric][2]
    shown = [float(metrics.format_value(v, kind)) for v in values if math.isfinite(v)]
    if len(set(shown)) + (len(shown) < len(values)) < 2:
        return None
    return max(shown) if metrics.DISPLAY[metric][1] == "max" else min(shown)


class _Notes:
    """Numbered footnotes for cells without numbers (identical notes share a number)."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, text: str) -> str:
        if text not in self.items:
            self.items.append(text)
        return f"[{self.items.index(text) + 1}]"

    def render(self) -> str:
        return "\n".join(f"{i}. {t}" for i, t in enumerate(self.items, 1))


def _status_text(row: pd.Series, notes: _Notes) -> str:
    reason = row["error"].splitlines()[0][:300] if row["error"] else row["status"]
    who = row["label"] + (f" trained on {row['train_dataset']}" if row["train_dataset"] else "")
    where = f"{row['dataset_label']}/{row['split']}/{row['protocol']}"
    return f"{row['status']} {notes.add(f'{who} on {where}: {reason}')}"


def _metric_table(group: pd.DataFrame, columns: list[str], notes: _Notes) -> str:
    """Rows = methods, columns = metrics, best per column in bold; non-ok rows carry a footnote."""
    best = {m: _best(group.loc[group["n_ok"] > 0, f"{m}_mean"], m) for m in columns}
    rows = []
    for _, row in group.iterrows():
        label = _row_label(row)
        if row["n_ok"] == 0:
            rows.append([label, _status_text(row, notes), *["—"] * (len(columns) - 1), row["seeds"]])
            continue
        seeds = row["seeds"] if row["status"] == "ok" else f"{row['seeds']} {_status_text(row, notes)}"
        rows.append([label, *[_value_text(row, m, best[m]) for m in columns], seeds])
    return _md_table(["Method", *[metrics.DISPLAY[m][0] for m in columns], "seeds"], rows)


def _matrix_table(group: pd.DataFrame, metric: str, notes: _Notes) -> str:
    """Rows = training datasets, columns = test datasets; best per test dataset in bold."""
    tests = list(dict.fromkeys(group["dataset_label"]))
    ok = group[group["n_ok"] > 0]
    best = {t: _best(ok.loc[ok["dataset_label"] == t, f"{metric}_mean"], metric) for t in tests}
    rows = []
    for train, by_train in group.groupby("train_dataset", sort=False):
        cells = {r["dataset_label"]: _value_text(r, metric, best[r["dataset_label"]]) if r["n_ok"]
                 else _status_text(r, notes) for _, r in by_train.iterrows()}
        rows.append([train or "(no training set)", *[cells.get(t, "") for t in tests]])
    return f"{metrics.DISPLAY[metric][0]}:\n\n" + _md_table(["trained on \\ tested on", *tests], rows)


def _reported_table(reported: list[dict[str, Any]], dataset: str, proto: str) -> tuple[str, list[dict[str, Any]]]:
    match = [r for r in reported if r["dataset"] == dataset and r.get("protocol", proto) == proto]
    if not match:
        return "", []
    rows = [[r.get("label", r["method"]), metrics.DISPLAY.get(r["metric"], (r["metric"],))[0], str(r["value"]), r.get("kind", ""),
             r["source"]] for r in match]
    text = ("Reported in papers — copied from the source, **not measured by regbench**; comparable only where "
            "the paper's protocol and split match ours:\n\n"
            + _md_table(["Method (reported)", "Metric", "Reported value", "Kind", "Source"], rows))
    notes = [f"- {r.get('label', r['method'])}: {r['note'].strip()}" for r in match if r.get("note")]
    return text + ("\n\n" + "\n".join(notes) if notes else ""), match


def _header(name: str, spec: dict[str, Any], results: list[dict[str, Any]], grid_file: str) -> str:
    records = [r["record"] for r in results if r["status"] == "ok" and r.get("record")]
    tags = sorted({rec["protocol_tag"] for rec in records} | {
        f"{r['cell']['protocol']}-v{protocol.PROTOCOLS[r['cell']['protocol']].version}"
        for r in results if r["cell"]["protocol"] in protocol.PROTOCOLS})
    by_tag = {p.tag: p for p in protocol.PROTOCOLS.values()}
    proto_lines = [f"`{t}` — {by_tag[t].description}" if t in by_tag else f"`{t}` (no longer defined in this version)"
                   for t in tags]
    hardware = pd.Series([rec.get("device_name", "?") for rec in records]).value_counts()
    hw = "; ".join(f"{dev} ({n} run{'s' * (n > 1)})" for dev, n in hardware.items()) or "no runs yet"
    dates = sorted(rec["created"][:10] for rec in records if rec.get("created"))
    versions = sorted({rec.get("versions", {}).get("regbench", "?") for rec in records})
    commits = sorted({(rec.get("git_commit") or "uncommitted")[:10] for rec in records})
    n_ok = sum(r["status"] == "ok" for r in results)
    lines = [
        f"# {spec.get('title', name)}",
        "",
        f"Generated by `regbench leaderboard {name}` from the stored results of the grid `{grid_file}` "
        f"({n_ok} of {len(results)} cells measured). Do not edit by hand: rerun the grid and the command.",
        "",
        f"- **Protocols**: {'; '.join(proto_lines) or 'none'}",
        f"- **Metrics**: {METRIC_NOTES} Values are mean ± std over seeds (std from two seeds up); "
        f"the best measured value of each column is in **bold**.",
        f"- **Hardware**: {hw}",
        f"- **Runs dated**: {dates[0] + ' to ' + dates[-1] if dates else 'no runs yet'}; regbench "
        f"{', '.join(versions) or '?'}; git {', '.join(commits) or '?'}",
    ]
    if spec.get("description"):
        lines += ["", str(spec["description"]).strip()]
    return "\n".join(lines)


def _curve(per_pair: list[pd.DataFrame]) -> np.ndarray:
    """CMR at each of ``CURVE_THRESHOLDS`` over the pooled pairs of every seed."""
    rmse = np.concatenate([t["rmse"].to_numpy(float) for t in per_pair])
    return (rmse[None, :] < CURVE_THRESHOLDS[:, None]).mean(axis=1)


def _row_label(row: Any) -> str:
    """A table row's name: the method label, and its training dataset for learned cells."""
    return (row.get("label") or row["method"]) + (f" ({row['train_dataset']})" if row.get("train_dataset") else "")


def _section_plots(name: str, results: list[dict[str, Any]], group: pd.DataFrame,
                   key: tuple[str, str, str, str]) -> dict[str, dict[str, Any]]:
    """The CMR-vs-threshold curves and accuracy-vs-runtime points of one dataset section."""
    dataset, dlabel, split, proto = key
    tables: dict[str, list[pd.DataFrame]] = {}
    for r in results:
        c = r["cell"]
        if (c["dataset"], c.get("dataset_label") or c["dataset"], c["split"], c["protocol"]) == key \
                and r["status"] == "ok" and r.get("per_pair") is not None:
            tables.setdefault(_row_label(c), []).append(r["per_pair"])
    speed = {_row_label(r): (r["runtime_ms_median_mean"], r["cmr_1px_mean"], r["cmr_3px_mean"])
             for _, r in group[group["n_ok"] > 0].iterrows()}
    title, slug = f"{dlabel} ({split}, {proto})", _slug(dlabel, split, proto)
    plots = {}
    if tables:
        plots[f"{name}-{slug}-cmr.png"] = {"kind": "curves", "title": title,
                                           "curves": {k: _curve(v).tolist() for k, v in tables.items()}}
    if speed:
        plots[f"{name}-{slug}-speed.png"] = {"kind": "speed", "title": title, "points": speed}
    return plots


def build(name: str, spec: dict[str, Any], results: list[dict[str, Any]], reported: list[dict[str, Any]],
          grid_file: str = "") -> Leaderboard:
    """The leaderboard of one grid from its cells' stored results (pure: same input, same output).

    Args:
        results: one entry per cell (``cell``, ``status``, ``error``, ``record``; ``per_pair``
            DataFrame or ``None`` for the curves), as :func:`regbench.grid.grid_results` returns.
        reported: entries of ``reported.yaml``.
    """
    table_kind = spec.get("table", "main")
    agg = aggregate(results)
    parts = [_header(name, spec, results, grid_file or f"leaderboards/{name}.yaml")]
    plots: dict[str, dict[str, Any]] = {}
    csv_reported: list[dict[str, Any]] = []
    if table_kind == "generalization":
        shown = spec.get("metrics", ["cmr_1px", "cmr_3px"])
        for (label, split, proto), g in agg.groupby(["label", "split", "protocol"], sort=False):
            parts.append(f"## {label} — trained on (rows) × tested on (columns), {split} split, `{proto}` protocol")
            notes = _Notes()
            parts += [_matrix_table(g, m, notes) for m in shown]
            if notes.items:
                parts.append(notes.render())
            file = f"{name}-{_slug(label, split, proto)}-matrix.png"
            plots[file] = {"kind": "matrix", "title": f"{label} ({split}, {proto})", "metric": shown[0],
                           "rows": list(dict.fromkeys(g["train_dataset"])), "cols": list(dict.fromkeys(g["dataset_label"])),
                           "values": {(r["train_dataset"], r["dataset_label"]): r[f"{shown[0]}_mean"]
                                      for _, r in g.iterrows()}}
            parts.append(f"![{label} generalization]({file})")
    else:
        for key, g in agg.groupby(["dataset", "dataset_label", "split", "protocol"], sort=False):
            dataset, dlabel, split, proto = key
            n_pairs = g["n_pairs"].max()
            parts.append(f"## {dlabel} — {split} split, `{proto}` protocol"
                         + (f", {int(n_pairs)} pairs" if math.isfinite(n_pairs) else ""))
            notes = _Notes()
            parts.append(_metric_table(g, COLUMNS[table_kind], notes))
            if table_kind == "runtime":
                devices = [[r["label"], r["device_name"] or "—"] for _, r in g.iterrows() if r["n_ok"]]
                if devices:
                    parts.append("Devices:\n\n" + _md_table(["Method", "device"], devices))
            if notes.items:
                parts.append(notes.render())
            text, match = _reported_table(reported, dataset, proto) if table_kind != "runtime" else ("", [])
            if text:
                parts.append(text)
                csv_reported += match
            section_plots = _section_plots(name, results, g, key)
            plots |= section_plots
            parts += [f"![{'CMR vs threshold' if f.endswith('cmr.png') else 'accuracy vs runtime'}, {dlabel}]({f})"
                      for f in section_plots]
    csv = agg.drop(columns=["n_ok"]).assign(source="measured", error=agg["error"].str.split("\n").str[0])
    if csv_reported:
        rep = pd.DataFrame([{"source": f"reported: {r['source']}", "method": r["method"],
                             "label": r.get("label", r["method"]), "dataset": r["dataset"],
                             "protocol": r.get("protocol", ""), "reported_metric": r["metric"],
                             "reported_value": str(r["value"]), "reported_kind": r.get("kind", "")} for r in csv_reported])
        csv = pd.concat([csv, rep], ignore_index=True)
    csv = csv[["source", *[c for c in csv.columns if c != "source"]]]
    return Leaderboard(name, "\n\n".join(parts) + "\n", csv, plots)


def draw(plot: dict[str, Any], path: Path) -> None:
    """Write one plot of :attr:`Leaderboard.plots` as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if plot["kind"] == "curves":
        fig, ax = plt.subplots(figsize=(6, 4.2))
        for label, curve in plot["curves"].items():
            ax.plot(CURVE_THRESHOLDS, 100 * np.asarray(curve), label=label)
        ax.set(xlabel="threshold (px)", ylabel="CMR (% of pairs with RMSE < threshold)", ylim=(0, 100), xlim=(0, 10),
               title=f"CMR vs threshold — {plot['title']}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    elif plot["kind"] == "speed":
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharex=True)
        for ax, i, metric in ((axes[0], 1, "CMR@1 (%)"), (axes[1], 2, "CMR@3 (%)")):
            for label, point in plot["points"].items():
                if math.isfinite(point[0]) and point[0] > 0:
                    ax.scatter(point[0], 100 * point[i], label=label)
                    ax.annotate(label, (point[0], 100 * point[i]), fontsize=7, xytext=(3, 3), textcoords="offset points")
            ax.set(xscale="log", xlabel="runtime per pair, median (ms)", ylabel=metric, ylim=(-2, 102))
            ax.grid(alpha=0.3)
        fig.suptitle(f"Accuracy vs runtime — {plot['title']}")
    else:
        values = np.array([[plot["values"].get((r, c), math.nan) for c in plot["cols"]] for r in plot["rows"]], float)
        fig, ax = plt.subplots(figsize=(1.2 * len(plot["cols"]) + 3, 0.6 * len(plot["rows"]) + 2))
        im = ax.imshow(100 * values, vmin=0, vmax=100, cmap="viridis")
        ax.set_xticks(range(len(plot["cols"])), plot["cols"], rotation=30, ha="right")
        ax.set_yticks(range(len(plot["rows"])), [r or "—" for r in plot["rows"]])
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, "n/a" if math.isnan(v) else f"{100 * v:.1f}", ha="center", va="center", fontsize=8,
                    color="k" if math.isnan(v) else "w")
        ax.set(xlabel="tested on", ylabel="trained on", title=f"{metrics.DISPLAY[plot['metric']][0]} — {plot['title']}")
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(board: Leaderboard, out_dir: str | Path) -> list[Path]:
    """Write ``<name>.md``, ``<name>.csv`` and the plots into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{board.name}.md", out / f"{board.name}.csv"]
    store.atomic_write_text(paths[0], board.markdown)
    store.atomic_write_text(paths[1], board.table.to_csv(index=False, float_format="%.6g"))
    for file, plot in board.plots.items():
        draw(plot, out / file)
        paths.append(out / file)
    return paths


def load_reported(path: str | Path | None = None) -> list[dict[str, Any]]:
    path = Path(path) if path else leaderboards_dir() / "reported.yaml"
    entries = (yaml.safe_load(path.read_text()) or {}).get("reported", []) if path.exists() else []
    for e in entries:
        missing = {"method", "dataset", "metric", "value", "source"} - set(e)
        if missing:
            raise ValueError(f"{path}: reported entry {e} lacks {', '.join(sorted(missing))}")
    return entries


def regenerate(name: str | None, results_dir: str | Path = "results", out_dir: str | Path | None = None,
               limit: int | None = None) -> list[Path]:
    """Rebuild the leaderboard of grid ``name`` (``leaderboards/<name>.yaml``; every grid when
    ``None``) from ``results_dir``; returns the files written."""
    written = []
    for grid_name in [name] if name else grid_names():
        grid = load_grid(grid_name, limit=limit)
        board = build(grid.name, grid.spec, grid_results(grid, results_dir), load_reported(),
                      grid_file=f"{grid.path.parent.name}/{grid.path.name}" if grid.path else "")
        written += write(board, out_dir or leaderboards_dir())
    return written
