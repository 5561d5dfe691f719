import json
import math
import re

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.ndimage import fourier_shift

from regbench import registry, tracking
from regbench.cli import main
from regbench.errors import DatasetError
from regbench.methods.phase_correlation import PhaseCorrelation
from regbench.runner import evaluate
from regbench.types import Pair


@pytest.fixture
def methods(monkeypatch):
    monkeypatch.setitem(registry.METHODS, "crashy", "tinymethods:Crashy")
    monkeypatch.setitem(registry.METHODS, "interrupting", "tinymethods:Interrupting")


def test_identity_is_perfect_without_deformation_and_poor_with(tiny, results):
    none = evaluate("identity", tiny, protocol="none", results_dir=results, log_mlflow=False)
    assert none.summary["cmr_1px"] == 1.0 and none.summary["r_avg"] == 0.0
    main_ = evaluate("identity", tiny, protocol="main", results_dir=results, log_mlflow=False)
    assert main_.summary["cmr_1px"] == 0.0 and main_.summary["r_avg"] > 5


def test_phase_correlation_recovers_pure_translation():
    rng = np.random.default_rng(0)
    import cv2

    big = cv2.GaussianBlur(rng.random((256, 256)), (0, 0), 1.0)  # broadband, like real imagery
    crop = (slice(64, 192), slice(64, 192))  # no wrap-around of the circular shift inside the crop
    for t in [(3.3, -7.6), (10.25, 4.5), (-12.0, 5.0), (0.4, 0.7), (20.6, -30.3)]:
        sar = np.fft.ifft2(fourier_shift(np.fft.fft2(big), (-t[1], -t[0]))).real  # sar(p) = img(p + t)
        pred = PhaseCorrelation().register(Pair(sar[crop].astype(np.float32), big[crop].astype(np.float32)))
        assert np.abs(pred.matrix[:2, 2] - t).max() < 0.1, (t, pred.matrix[:2, 2])


def test_failures_are_recorded_and_the_run_goes_on(tiny, methods, results):
    r = evaluate("crashy", tiny, results_dir=results, log_mlflow=False)
    failed = dict(zip(r.table["pair_id"], r.table["failed"]))
    assert failed["test-01"] == "RuntimeError: boom"
    assert failed["test-02"] == "flow contains NaN or inf"
    assert failed["test-00"] == ""
    assert r.summary["fail_rate"] == pytest.approx(4 / 6)
    assert math.isinf(r.table.set_index("pair_id").loc["test-03", "rmse"])


def test_cache_hits_and_interrupted_runs_resume(tiny, methods, results):
    with pytest.raises(KeyboardInterrupt):
        evaluate("interrupting", tiny, results_dir=results, log_mlflow=False)
    resumed = evaluate("interrupting", tiny, results_dir=results, log_mlflow=False)
    assert resumed.record["predicted_now"] == 3  # the three pairs finished before the interrupt were kept
    again = evaluate("interrupting", tiny, results_dir=results, log_mlflow=False)
    assert again.record["predicted_now"] == 0
    other = evaluate("interrupting", tiny, dataset_sets={"size": 64}, results_dir=results, log_mlflow=False)
    assert other.record["predicted_now"] == 6  # other data, other cache key


def test_unreadable_image_stops_with_its_name_and_keeps_finished_pairs(tiny, results):
    with pytest.raises(DatasetError, match="test-03"):
        evaluate("identity", tiny, dataset_sets={"corrupt": "test-03"}, results_dir=results, log_mlflow=False)
    r = evaluate("identity", tiny, limit=3, dataset_sets={"corrupt": "test-03"}, results_dir=results, log_mlflow=False)
    assert list(r.table["pair_id"]) == ["test-00", "test-02", "test-04"]
    assert r.record["predicted_now"] == 1  # test-00 and test-02 were kept from the crashed run


def test_unknown_names_fail_with_suggestions(tiny, results):
    with pytest.raises(registry.UnknownNameError, match="Did you mean identity"):
        evaluate("identiy", tiny, results_dir=results)
    with pytest.raises(KeyError, match="known protocols"):
        evaluate("identity", tiny, protocol="strict", results_dir=results)


def test_cli_run_logs_the_printed_metrics_to_mlflow(tiny, results):
    out = CliRunner().invoke(main, ["run", "-m", "phase_correlation", "-d", tiny, "--results", str(results)])
    assert out.exit_code == 0, out.output
    run_id = re.search(r"MLflow run: (\w+)", out.output).group(1)
    logged = tracking.read_run_metrics(run_id, results)
    lines = out.output.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("method"))
    heads = re.split(r"\s{2,}", lines[at].strip())
    printed = dict(zip(heads, lines[at + 2].split()))
    for k, head in (("cmr_1px", "CMR@1 (%)"), ("cmr_3px", "CMR@3 (%)"), ("cmr_5px", "CMR@5 (%)")):
        assert float(printed[head]) == pytest.approx(100 * logged[k], abs=0.05)
    assert float(printed["R_avg (px)"]) == pytest.approx(logged["r_avg"], abs=0.005)
    assert logged["n_pairs"] == 6
    again = CliRunner().invoke(main, ["run", "-m", "phase_correlation", "-d", tiny, "--results",
                                                      str(results), "--json"])
    record = json.loads(again.stdout)  # one JSON document on stdout, nothing else
    for k in ("cmr_1px", "cmr_3px", "cmr_5px", "r_avg"):
        assert record["summary"][k] == pytest.approx(logged[k], abs=1e-9)


def test_cli_reports_bad_names_and_sets(tiny, results):
    out = CliRunner().invoke(main, ["run", "-m", "identity", "-d", tiny, "--set", "nokey=1", "--results", str(results)])
    assert out.exit_code == 1 and "Error: unknown config key 'nokey'" in out.output  # one message, no traceback
    out = CliRunner().invoke(main, ["config", "--method", "phase_correlation", "--set", "window=false"])
    assert out.exit_code == 0 and "window: false" in out.output


def test_cli_lists_names_with_variants_marked():
    out = CliRunner().invoke(main, ["list", "methods"])
    assert out.exit_code == 0
    lines = {line.split()[0]: line for line in out.output.splitlines()}
    assert set(lines) == set(registry.names("method"))
    assert "[variant of soma]" in lines["soma-no-fge"] and "[variant of" not in lines["cfog"]
    assert all(len(line) <= 126 for line in lines.values())
