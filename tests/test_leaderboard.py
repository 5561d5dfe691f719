"""Leaderboards: golden Markdown/CSV from a fixed set of stored results, and the rules behind them.

The fixed results live in tests/golden/results.json. After an intended change of the layout,
regenerate the golden files with ``REGBENCH_UPDATE_GOLDEN=1 pytest tests/test_leaderboard.py``
and review the diff.
"""
from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest

from regbench.grid import leaderboard as lb

GOLDEN = Path(__file__).parent / "golden"
REPORTED = [{"method": "soma", "label": "SOMA (paper)", "dataset": "sopatch_sen1_2", "protocol": "main",
             "metric": "cmr_1px", "value": "+12.29%", "kind": "improvement over the best competing method",
             "source": "arXiv 2511.13168 abstract", "note": "A delta, not an absolute CMR."}]
SPECS = {
    "main": {"title": "Golden main", "table": "main"},
    "runtime": {"title": "Golden runtime", "table": "runtime"},
    "generalization": {"title": "Golden generalization", "table": "generalization", "metrics": ["cmr_1px", "cmr_3px"]},
}


def stored(kind: str) -> list[dict]:
    results = json.loads((GOLDEN / "results.json").read_text())["generalization" if kind == "generalization" else "main"]
    for r in results:
        if r.get("per_pair"):
            r["per_pair"] = pd.DataFrame({"rmse": [math.inf if v is None else v for v in r["per_pair"]["rmse"]]})
    return results


def check_golden(path: Path, text: str) -> None:
    if os.environ.get("REGBENCH_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{path.name} changed; if intended, regenerate (see module docstring)"


@pytest.mark.parametrize("kind", list(SPECS))
def test_golden_tables(kind):
    board = lb.build(f"golden-{kind}", SPECS[kind], stored(kind), REPORTED, grid_file=f"leaderboards/golden-{kind}.yaml")
    check_golden(GOLDEN / f"{kind}.md", board.markdown)
    check_golden(GOLDEN / f"{kind}.csv", board.table.to_csv(index=False, float_format="%.6g"))


def test_build_is_a_pure_function_of_the_records():
    results = stored("main")
    before = copy.deepcopy([{k: v for k, v in r.items() if k != "per_pair"} for r in results])
    a = lb.build("g", SPECS["main"], results, REPORTED)
    b = lb.build("g", SPECS["main"], stored("main"), REPORTED)
    assert a.markdown == b.markdown and a.table.equals(b.table) and a.plots == b.plots
    assert [{k: v for k, v in r.items() if k != "per_pair"} for r in results] == before


def test_values_seeds_best_and_failures():
    results = stored("main")
    board = lb.build("g", SPECS["main"], results, REPORTED)
    cfog = [r["record"]["summary"]["cmr_3px"] for r in results
            if r["cell"]["method"] == "cfog" and r["cell"]["dataset"] == "sopatch_sen1_2"]
    mean, std = pd.Series(cfog).mean(), pd.Series(cfog).std(ddof=1)
    row = next(line for line in board.markdown.splitlines() if line.startswith("| cfog |"))
    assert f"{100 * mean:.1f} ± {100 * std:.1f}" in row and row.endswith("| 2/2 |")
    # the best CMR@3 of the SEN1-2 section is bold and belongs to cfog, identity's is not
    section = board.markdown.split("## SEN1-2")[1].split("## ")[0]
    assert f"**{100 * mean:.1f} ± {100 * std:.1f}**" in section
    assert "| identity | 0.0 | 0.0 | 0.0 |" in section
    # failed and not-run cells show their reason, never a number
    assert "| soma (sopatch_sen1_2) | failed [" in section and "WeightsMissingError: SOMA checkpoint" in section
    assert "| ncc | missing [" in section
    # a seed that failed leaves the other seed's numbers, marked with its reason
    synthetic = board.markdown.split("## synthetic")[1]
    cfog_row = next(line for line in synthetic.splitlines() if line.startswith("| cfog |"))
    assert "| ∞ |" in cfog_row and "1/2 failed [" in cfog_row and "CUDA out of memory" in synthetic


def test_reported_numbers_are_separate_rows_with_their_source():
    board = lb.build("g", SPECS["main"], stored("main"), REPORTED)
    section = board.markdown.split("## SEN1-2")[1].split("## ")[0]
    measured, reported = section.split("Reported in papers")
    assert "+12.29%" not in measured and "SOMA (paper)" not in measured
    assert "| SOMA (paper) | CMR@1 (%) | +12.29% | improvement over the best competing method | arXiv 2511.13168 abstract |" in reported
    assert "+12.29%" not in board.markdown.split("## synthetic")[1]  # only next to its own dataset
    rows = board.table[board.table["source"] != "measured"]
    assert list(rows["source"]) == ["reported: arXiv 2511.13168 abstract"] and rows["status"].isna().all()
    assert board.table.loc[board.table["source"] == "measured", "reported_value"].isna().all()


def test_reported_yaml_holds_the_soma_abstract_numbers():
    entries = lb.load_reported()
    assert {(e["dataset"], e["value"]) for e in entries} == {("sopatch_sen1_2", "+12.29%"), ("gfge_so", "+18.50%")}
    assert all(e["source"] == "arXiv 2511.13168 abstract" for e in entries)


def test_write_produces_tables_and_png_plots(tmp_path):
    paths = []
    for kind in SPECS:
        paths += lb.write(lb.build(f"g-{kind}", SPECS[kind], stored(kind), REPORTED), tmp_path)
    names = sorted(p.name for p in paths)
    assert "g-main-SEN1-2_SOPatch-test-main-cmr.png" in names and "g-generalization-soma-test-main-matrix.png" in names
    for p in paths:
        assert p.stat().st_size > 0
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert f"]({p.name})" in (tmp_path / f"{p.name.split('-')[0]}-{p.name.split('-')[1]}.md").read_text()
