"""Grids: cell ids, skipping finished cells, failures and crashes, resume, sharding, MLflow, executors."""
from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from regbench import grid, registry
from regbench.errors import GridError
from regbench.grid import cells
from regbench.grid.executors import LocalExecutor, get_executor

TESTS = Path(__file__).parent

# A plugin module (written to a temporary folder and imported by every worker through the grid's
# ``imports``): the tiny dataset plus a method that SIGKILLs its own process once, mid-cell, and
# one whose weights are missing.
PLUGIN = textwrap.dedent('''
    import os, signal
    from dataclasses import dataclass
    from pathlib import Path

    import numpy as np

    from regbench import registry
    from regbench.errors import WeightsMissingError
    from regbench.methods.base import Method, MethodConfig
    from regbench.types import Prediction
    from tinydata import identify

    registry.DATASETS["tiny"] = "tinydata:TinyDataset"
    registry.METHODS["dies-once"] = "gridplug:DiesOnce"
    registry.METHODS["needs-weights"] = "gridplug:NeedsWeights"


    @dataclass
    class DiesOnceConfig(MethodConfig):
        marker: str = ""
        at_pair: str = "test-02"


    class DiesOnce(Method):
        """Identity, but the first process to reach ``at_pair`` is killed (as by the OOM killer)."""

        Config = DiesOnceConfig

        def register(self, pair):
            if identify(pair.opt) == self.config.at_pair and not Path(self.config.marker).exists():
                Path(self.config.marker).touch()
                os.kill(os.getpid(), signal.SIGKILL)
            return Prediction(matrix=np.eye(3))


    @dataclass
    class NeedsWeightsConfig(MethodConfig):
        weights: str = ""


    class NeedsWeights(Method):
        Config = NeedsWeightsConfig

        def setup(self, device):
            raise WeightsMissingError("no weights: fetch w.pt and put it at /nowhere/w.pt")

        def register(self, pair):
            raise AssertionError("never called")
''')


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """Make ``gridplug`` importable here and in worker processes; undo its registrations after."""
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "gridplug.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), str(TESTS), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for table, name in ((registry.DATASETS, "tiny"), (registry.METHODS, "dies-once"), (registry.METHODS, "needs-weights")):
        monkeypatch.setitem(table, name, "")
    yield folder
    sys.modules.pop("gridplug", None)


def make_grid(tmp_path: Path, methods: list, n: int = 4, **extra) -> grid.Grid:
    spec = {"name": "t", "methods": methods, "datasets": [{"name": "tiny", "set": {"n": n, "size": 64}}],
            "imports": ["gridplug"], **extra}
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(spec))
    return grid.load_grid(path)


def test_cell_ids_follow_the_resolved_cell(plugin, tmp_path, monkeypatch):
    base = {"methods": ["identity", {"name": "phase_correlation", "label": "pc"}], "datasets": ["tiny"],
            "imports": ["gridplug"]}
    cells = grid.expand(base)
    assert [c.label for c in cells] == ["identity", "pc"]
    ids = {c.id for c in cells}
    assert ids == {c.id for c in grid.expand(base | {"device": "cpu"})}  # execution settings: same cells
    assert ids == {c.id for c in grid.expand(base | {"methods": ["identity", "phase_correlation"]})}  # labels too
    changed = grid.expand(base | {"methods": [{"name": "phase_correlation", "set": {"upsample_factor": 10}}]})
    assert changed[0].id not in ids and changed[0].resolved["method_config"]["upsample_factor"] == 10
    assert not ids & {c.id for c in grid.expand(base, limit=3)}
    assert not ids & {c.id for c in grid.expand(base | {"seeds": [1]})}
    learned = grid.expand({"methods": [{"name": "needs-weights", "train_on": ["a", "b"],
                                        "checkpoint": "ck/{train_dataset}.pt"}],
                           "datasets": ["tiny"], "imports": ["gridplug"]})
    assert [(c.train_dataset, c.sets["weights"]) for c in learned] == [("a", "ck/a.pt"), ("b", "ck/b.pt")]
    assert learned[0].id != learned[1].id
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "a.pt").write_bytes(b"weights")
    monkeypatch.chdir(tmp_path)  # the checkpoint path is relative to where the grid runs
    trained = grid.expand({"methods": [{"name": "needs-weights", "train_on": ["a"],
                                        "checkpoint": "ck/{train_dataset}.pt"}],
                           "datasets": ["tiny"], "imports": ["gridplug"]})
    assert trained[0].id != learned[0].id and trained[0].resolved["weights_file"]["size"] == 7
    bad = grid.expand(base | {"methods": ["no-such-method"]})[0]
    assert bad.resolved is None and "unknown method 'no-such-method'" in bad.error
    bad_set = grid.expand(base | {"methods": [{"name": "identity", "set": {"nope": 1}}]})[0]
    assert "unknown config key 'nope'" in bad_set.error
    with pytest.raises(GridError, match="unknown grid keys: method"):
        grid.expand(base | {"method": "x"})


def test_failures_are_recorded_and_finished_cells_never_rerun(plugin, tmp_path):
    g = make_grid(tmp_path, ["identity", "needs-weights", "no-such-method"])
    results = tmp_path / "results"
    report = grid.run_grid(g, results, log_mlflow=False, echo=lambda s: None)
    assert [c.method for c in report.ok] == ["identity"]
    assert [(c.method, e) for c, e in report.failed] == [
        ("needs-weights", "WeightsMissingError: no weights: fetch w.pt and put it at /nowhere/w.pt")]
    assert [c.method for c, _ in report.invalid] == ["no-such-method"] and report.complete
    ok = grid.read_result(results, g.cells[0])
    assert ok["status"] == "ok" and ok["record"]["summary"]["n_pairs"] == 4
    assert len(pd.read_csv(cells.cell_dir(results, g.cells[0].id) / "per_pair.csv")) == 4
    assert "WeightsMissingError" in grid.read_result(results, g.cells[1])["traceback"]

    again = grid.run_grid(g, results, log_mlflow=False, echo=lambda s: None)
    assert not again.ok and not again.failed and len(again.skipped) == 2
    assert [c.method for c, _ in again.earlier_failed] == ["needs-weights"]
    assert grid.read_result(results, g.cells[0])["finished"] == ok["finished"]  # untouched
    planned: list[str] = []
    grid.run_grid(g, results, retry_failed=True, dry_run=True, echo=planned.append)
    assert len(planned) == 2 and "needs-weights" in planned[0] and planned[1] == "dry run: 1 of 3 cells would run"
    retry = grid.run_grid(g, results, retry_failed=True, log_mlflow=False, echo=lambda s: None)
    assert [c.method for c, _ in retry.failed] == ["needs-weights"] and not retry.ok


def test_a_killed_worker_loses_only_its_unfinished_cell(plugin, tmp_path):
    marker = tmp_path / "died"
    g = make_grid(tmp_path, [{"name": "dies-once", "set": {"marker": str(marker)}}, "identity"], n=6)
    results = tmp_path / "results"
    report = grid.run_grid(g, results, executor=LocalExecutor(max_parallel=2), log_mlflow=False, echo=lambda s: None)
    assert [c.method for c in report.ok] == ["identity"] and not report.complete
    (cell, reason), = report.crashed
    assert cell.method == "dies-once" and reason.startswith("worker killed by SIGKILL")
    assert grid.read_result(results, cell) is None  # no result: the next run runs it again

    resumed = grid.run_grid(g, results, log_mlflow=False, echo=lambda s: None)
    assert [c.method for c in resumed.ok] == ["dies-once"] and [c.method for c in resumed.skipped] == ["identity"]
    record = grid.read_result(results, cell)["record"]
    assert record["predicted_now"] == 4 and record["summary"]["n_pairs"] == 6  # pairs 00 and 01 came from the cache


def test_sharded_cell_equals_the_unsharded_run(plugin, tmp_path):
    whole = make_grid(tmp_path, ["phase_correlation"], n=5)
    sharded = make_grid(tmp_path, [{"name": "phase_correlation", "shards": 2}], n=5)
    assert whole.cells[0].id == sharded.cells[0].id  # sharding is how a cell runs, not what it is
    assert grid.run_cell(whole.cells[0].to_dict(), str(tmp_path / "a"))["status"] == "ok"  # as a worker would
    report = grid.run_grid(sharded, tmp_path / "b", executor=LocalExecutor(max_parallel=2), log_mlflow=False,
                           echo=lambda s: None)
    assert len(report.ok) == 1
    a, b = (grid.read_result(tmp_path / d, whole.cells[0])["record"] for d in "ab")
    assert b["shards"] == 2 and b["predicted_now"] == 5 and a["config_hash"] == b["config_hash"]
    accuracy = [k for k in a["summary"] if not k.startswith(("runtime", "load", "peak"))]
    assert {k: b["summary"][k] for k in accuracy} == {k: a["summary"][k] for k in accuracy}
    cols = ["pair_id", "rmse", "rmse_valid", "epe_mean", "failed"]
    ta, tb = (pd.read_csv(cells.cell_dir(tmp_path / d, whole.cells[0].id) / "per_pair.csv")[cols] for d in "ab")
    pd.testing.assert_frame_equal(ta, tb)


def test_mlflow_parent_and_children_and_resume_of_an_interrupted_orchestrator(plugin, tmp_path):
    import mlflow

    from regbench import tracking

    g = make_grid(tmp_path, ["identity", "phase_correlation"])
    results = tmp_path / "results"
    # an orchestrator that died after its worker stored identity's result but before logging it
    assert grid.run_cell(g.cells[0].to_dict(), str(results))["status"] == "ok"
    first = grid.read_result(results, g.cells[0])
    assert "mlflow_run_id" not in first

    report = grid.run_grid(g, results, echo=lambda s: None)
    assert [c.method for c in report.ok] == ["phase_correlation"] and [c.method for c in report.skipped] == ["identity"]
    mlflow.set_tracking_uri(tracking.tracking_uri(results))
    runs = mlflow.search_runs(experiment_names=[tracking.EXPERIMENT], output_format="list")
    parent = next(r for r in runs if r.data.tags.get("regbench.grid") == "t")
    assert parent.info.run_id == report.parent_run_id and parent.info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.params["method"] for r in children) == ["identity", "phase_correlation"]
    for cell in g.cells:
        stored = grid.read_result(results, cell)
        child = next(r for r in children if r.info.run_id == stored["mlflow_run_id"])
        assert child.data.tags["regbench.cell_id"] == cell.id
        assert child.data.metrics["cmr_5px"] == stored["record"]["summary"]["cmr_5px"]
    assert grid.read_result(results, g.cells[0])["finished"] == first["finished"]  # ingested, not rerun
    assert grid.run_grid(g, results, echo=lambda s: None).parent_run_id is None  # nothing to do, nothing logged


def test_submitit_executor_runs_cells_as_local_jobs(plugin, tmp_path):
    pytest.importorskip("submitit")  # a dev dependency (the cluster extra); see pyproject
    marker = tmp_path / "died"
    g = make_grid(tmp_path, ["identity", {"name": "dies-once", "set": {"marker": str(marker)}}])
    executor = get_executor("submitit", cluster="local", folder=tmp_path / "jobs" / "%j", poll_s=0.2, timeout_min=5)
    report = grid.run_grid(g, tmp_path / "results", executor=executor, log_mlflow=False, echo=lambda s: None)
    assert [c.method for c in report.ok] == ["identity"] and not report.failed
    (cell, reason), = report.crashed
    assert cell.method == "dies-once" and "submitit job" in reason
    assert grid.read_result(tmp_path / "results", g.cells[0])["record"]["summary"]["n_pairs"] == 4


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory):
    ray = pytest.importorskip("ray")  # a dev dependency (the cluster extra); see pyproject
    folder = tmp_path_factory.mktemp("rayplugin")
    (folder / "gridplug.py").write_text(PLUGIN)
    with pytest.MonkeyPatch.context() as mp:  # workers start with this environment
        mp.setenv("PYTHONPATH", os.pathsep.join([str(folder), str(TESTS), os.environ.get("PYTHONPATH", "")]))
        mp.setenv("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_executor_runs_cells_as_ray_tasks(ray_session, plugin, tmp_path):
    marker = tmp_path / "died"
    g = make_grid(tmp_path, ["identity", "needs-weights", {"name": "dies-once", "set": {"marker": str(marker)}}])
    executor = get_executor("ray")
    report = grid.run_grid(g, tmp_path / "results", executor=executor, log_mlflow=False, echo=lambda s: None)
    assert [c.method for c in report.ok] == ["identity"]
    assert [c.method for c, _ in report.failed] == ["needs-weights"]
    (cell, reason), = report.crashed
    assert cell.method == "dies-once" and "ray task" in reason
    assert ray_session.is_initialized()  # joined the running session; did not stop it
    resumed = grid.run_grid(g, tmp_path / "results", executor=executor, log_mlflow=False, echo=lambda s: None)
    assert [c.method for c in resumed.ok] == ["dies-once"]


@pytest.mark.slow
def test_synthetic_grid_regenerates_its_leaderboard_end_to_end(tmp_path, monkeypatch):
    from regbench.cli.grid import grid_cmd, leaderboard_cmd

    monkeypatch.setenv("REGBENCH_CACHE", str(tmp_path / "cache"))
    results, out = str(tmp_path / "results"), tmp_path / "lb"
    grid_file = str(registry.cards_root() / "leaderboards" / "synthetic.yaml")
    args = [grid_file, "--limit", "2", "--results", results, "--no-mlflow", "--max-parallel", "2",
            "--methods", "identity,soma-small"]
    monkeypatch.chdir(tmp_path)  # the checkpoint path results/train/soma-small-synthetic/best.pt is relative: absent here
    run = CliRunner().invoke(grid_cmd, args)
    assert run.exit_code == 0, run.output
    assert "2 ran ok, 2 failed, 0 crashed" in run.output and "WeightsMissingError" in run.output
    assert "cmr_1px" not in run.output and "CMR@1 (%)" in run.output  # the table of cells, for people
    again = CliRunner().invoke(grid_cmd, args)
    assert again.exit_code == 0 and "0 ran ok, 0 failed, 0 crashed, 4 already done" in again.output
    as_json = json.loads(CliRunner().invoke(grid_cmd, [*args, "--json"]).stdout)
    assert len(as_json["skipped"]) == 4 and {c["status"] for c in as_json["cells"]} == {"ok", "failed"}

    board = CliRunner().invoke(leaderboard_cmd, ["synthetic", "--limit", "2", "--results", results, "--out", str(out),
                                                 "--json"])
    assert board.exit_code == 0, board.output
    assert str(out / "synthetic.md") in json.loads(board.stdout)["written"]
    md = (out / "synthetic.md").read_text()
    assert md.count("## synthetic — test split") == 2 and "`relaxed-v1`" in md and ", 2 pairs" in md
    assert "| soma-small (synthetic) | failed [" in md and "WeightsMissingError: SOMA checkpoint" in md
    assert "| cfog | missing [" in md  # in the grid, not run here: shown as missing, not as a number
    csv = pd.read_csv(out / "synthetic.csv")
    ok = csv[csv["status"] == "ok"]
    assert set(ok["method"]) == {"identity"} and (ok["n_pairs"] == 2).all() and len(ok) == 2
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [f"synthetic-synthetic-test-{p}-{k}.png" for p in ("main", "relaxed") for k in ("cmr", "speed")]
    assert all((out / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    stored = json.loads(next((Path(results) / "cells").glob("*/result.json")).read_text())
    assert stored["cell"]["limit"] == 2
