import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from regbench import metrics, protocol, store


def test_draws_stay_in_protocol_ranges():
    p = protocol.get_protocol("main")
    draws = [protocol.draw_deformation(p, "d", "test", str(i)) for i in range(300)]
    assert all(abs(d["rotation_deg"]) <= 5 and 0.8 <= d["scale"] <= 1.2 for d in draws)
    assert all(abs(d["tx"]) <= 32 and abs(d["ty"]) <= 32 for d in draws)
    assert max(abs(d["tx"]) for d in draws) > 25  # the range is actually used
    r = protocol.get_protocol("relaxed")
    assert all(d["scale"] == 1.0 for d in (protocol.draw_deformation(r, "d", "test", str(i)) for i in range(20)))
    assert all(v == 0 or v == 1.0 for v in protocol.draw_deformation(protocol.get_protocol("none"), "d", "t", "0").values())


def test_draws_depend_on_every_key():
    p = protocol.get_protocol("main")
    base = protocol.draw_deformation(p, "d", "test", "7")
    assert protocol.draw_deformation(p, "d", "test", "7") == base
    for args in (("e", "test", "7"), ("d", "val", "7"), ("d", "test", "8")):
        assert protocol.draw_deformation(p, *args) != base
    assert protocol.draw_deformation(protocol.get_protocol("relaxed"), "d", "test", "7") != base


def test_draws_identical_across_processes():
    code = "import json; from regbench import protocol as p; print(json.dumps(p.draw_deformation(p.get_protocol('main'), 'synthetic', 'test', 'test-0003')))"
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": s, "PATH": ""}).stdout for s in ("1", "2")}
    assert len(outs) == 1
    assert json.loads(outs.pop()) == protocol.draw_deformation(protocol.get_protocol("main"), "synthetic", "test", "test-0003")


def test_manifest_written_once_and_guarded(tmp_path):
    p = protocol.get_protocol("main")
    path = tmp_path / "m.json"
    first = store.load_or_create_manifest(path, p, "d", "test", ["a", "b"])
    assert json.loads(path.read_text())["deformations"] == first
    assert store.load_or_create_manifest(path, p, "d", "test", ["b"]) == {"b": first["b"]}
    data = json.loads(path.read_text())
    data["deformations"]["a"]["tx"] = 0.0
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="checksum"):
        store.load_or_create_manifest(path, p, "d", "test", ["a"])
    with pytest.raises(KeyError, match="known protocols"):
        protocol.get_protocol("mian")


def test_pair_errors_hand_computed():
    gt = np.zeros((4, 4, 2), np.float32)
    pred = gt.copy()
    pred[..., 0] = 3.0
    pred[0, 0] = [0.0, 4.0]  # 15 pixels with error 3, one with error 4
    e = metrics.pair_errors(pred, gt)
    sq = np.full(16, 9.0)
    sq[0] = 16.0
    assert e["rmse"] == pytest.approx(math.sqrt(sq.mean()))
    assert e["epe_mean"] == pytest.approx((15 * 3 + 4) / 16)
    assert "epe_median" not in e
    assert metrics.pair_errors(None, gt)["rmse"] == math.inf


def test_valid_rmse_ignores_out_of_image_pixels():
    gt = np.zeros((4, 4, 2), np.float32)
    gt[:, 3, 0] = 5.0  # the last column maps outside the image
    pred = gt.copy()
    pred[:, 3, 0] = 0.0
    e = metrics.pair_errors(pred, gt)
    assert e["rmse_valid"] == 0.0 and e["rmse"] == pytest.approx(math.sqrt(25 * 4 / 16))


def test_cmr_and_summary_count_failures():
    table = pd.DataFrame({"rmse": [0.5, 0.99, 1.0, 2.5, math.inf], "epe_mean": [0.4, 0.9, 1, 2, math.inf],
                          "runtime_ms": [10.0, 20, 30, 40, 50]})
    s = metrics.summarize(table)
    assert s["cmr_1px"] == pytest.approx(2 / 5)  # strict <: 1.0 is not a success
    assert s["cmr_3px"] == pytest.approx(4 / 5)
    assert s["cmr_5px"] == pytest.approx(4 / 5)  # the failed pair never counts as correct
    assert s["r_avg"] == math.inf and s["r_avg_ok"] == pytest.approx((0.5 + 0.99 + 1 + 2.5) / 4)
    assert s["fail_rate"] == pytest.approx(0.2)
    assert s["runtime_ms_median"] == 30.0
