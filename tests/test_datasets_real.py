"""Real-dataset loaders on tiny fake copies of their layouts (tests/fakedata.py): pairs found,
splits, manifests, `regbench data` verify/info/manifest, the DataLoader and an end-to-end run."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fakedata import make_folder, make_gfge, make_osdataset, make_qxs, make_sen1_2, make_sen12ms, make_sopatch, make_spacenet6
from regbench import protocol, registry
from regbench.bench.data import bench_loading
from regbench.cli.data import data
from regbench.datasets.verify import info, verify, write_manifests
from regbench.errors import DatasetError
from regbench.datasets.loader import pair_loader
from regbench.datasets.manifest import Manifest, hashed_split, load_manifest
from regbench.datasets.sen1_2 import FRACTIONS, SALT


@pytest.fixture(autouse=True)
def no_ambient_roots(monkeypatch, tmp_path):
    """No REGBENCH_DATA and an empty user config, whatever the machine has."""
    monkeypatch.delenv("REGBENCH_DATA", raising=False)
    monkeypatch.setenv("REGBENCH_CONFIG", str(tmp_path / "no-user-config.yaml"))


@pytest.fixture
def cards(tmp_path, monkeypatch):
    """A scratch cards root (copies of the repository's dataset cards) so manifests can be written."""
    root = tmp_path / "cards"
    (root / "datasets").mkdir(parents=True)
    for card in (registry.cards_root() / "datasets").glob("*.yaml"):
        (root / "datasets" / card.name).write_text(card.read_text())
    monkeypatch.setenv("REGBENCH_CARDS", str(root))
    return root


def build(name: str, root: Path, **sets):
    return registry.build_dataset(name, {"root": str(root), **sets})


def all_ids(ds) -> dict[str, list[str]]:
    return {s: ds.ids(s) for s in ds.splits}


# ---------------------------------------------------------------------------------- loaders
def test_folder_finds_exactly_the_pairs_and_loads_float_images(tmp_path):
    fake = make_folder(tmp_path / "f")
    ds = build("folder", fake.root)
    assert ds.ids("test") == fake.ids["test"] and ds.ids("train") == fake.ids["train"]
    sar, opt = ds.load("test", "a05")
    assert sar.shape == (32, 32) and opt.shape == (32, 32, 3)
    assert sar.dtype == opt.dtype == np.float32 and 0 <= sar.min() and sar.max() <= 1 and opt.max() > 0.5
    with pytest.raises(DatasetError, match=r"split 'val'.*no image pairs(.|\n)*<root>/val/sar/<name>.png(.|\n)*has no val/"):
        ds.ids("val")


def test_folder_defects_name_the_file(tmp_path):
    fake = make_folder(tmp_path / "f", defects=True)
    ds = build("folder", fake.root)
    with pytest.raises(DatasetError, match=f"{fake.orphan} has no partner {fake.orphan_missing}"):
        ds.ids("test")
    with pytest.raises(DatasetError, match=f"cannot decode image .*{fake.corrupt}"):
        ds.load("test", Path(fake.corrupt).stem)
    with pytest.raises(DatasetError, match=f"{fake.wrong_size} is 40×40 but its partner .* is 32×32"):
        ds.load("test", Path(fake.wrong_size).stem)
    assert ds.ids("train") == fake.ids["train"]  # the other split is intact


def test_sen1_2_globs_gapped_numbers_and_splits_by_scene(tmp_path):
    fake = make_sen1_2(tmp_path / "s", size=256)
    ds = build("sen1_2", fake.root)
    splits = all_ids(ds)
    assert sorted(i for ids in splits.values() for i in ids) == fake.ids["all"]
    scene = lambda pid: pid.rsplit("_p", 1)[0]  # noqa: E731
    owners = {}
    for split, ids in splits.items():
        for pid in ids:
            assert owners.setdefault(scene(pid), split) == split, f"scene {scene(pid)} in two splits"
    sar, opt = ds.load(ds.assign_split("ROIs2017_winter_146_p5"), "ROIs2017_winter_146_p5")
    assert sar.shape == (256, 256) and opt.shape == (256, 256, 3)


def test_sen1_2_split_rule_is_the_documented_hash():
    key = "ROIs1970_fall/25"
    u = int.from_bytes(hashlib.sha256(f"{SALT}/{key}".encode()).digest()[:8], "little") / 2**64
    expected = "train" if u < 0.8 else "val" if u < 0.9 else "test"
    assert hashed_split(key, SALT, FRACTIONS) == expected
    counts = {s: 0 for s in ("train", "val", "test")}
    for scene in range(2000):
        counts[hashed_split(f"ROIs1158_spring/{scene}", SALT, FRACTIONS)] += 1
    assert 1500 < counts["train"] < 1700 and 130 < counts["val"] < 270 and 130 < counts["test"] < 270


def test_sen1_2_wrong_size_is_reported(tmp_path):
    fake = make_sen1_2(tmp_path / "s", size=32)  # SEN1-2 patches are 256×256
    ds = build("sen1_2", fake.root)
    pid = fake.ids["all"][0]
    with pytest.raises(DatasetError, match="is 32×32, dataset 'sen1_2' expects 256×256"):
        ds.load(ds.assign_split(pid), pid)


@pytest.mark.parametrize("name,source", [("sopatch_sen1_2", "SEN1-2"), ("whu_sen_city", "WHU-SEN-City"),
                                         ("sopatch_osdataset", "OSdataset")])
def test_sopatch_sources(tmp_path, name, source):
    fake = make_sopatch(tmp_path / "SOPatch", size=32)
    ds = build(name, fake.root, size=32)
    for split in ds.splits:
        expected = fake.ids.get(f"{source}/{split}")
        if expected:
            assert ds.ids(split) == expected
        else:
            with pytest.raises(DatasetError, match=f"{source}/{split}/sar"):
                ds.ids(split)
    sar, opt = ds.load("test", fake.ids[f"{source}/test"][0])  # 3-channel SAR, grey or RGB optical
    assert sar.shape == (32, 32) and opt.shape == (32, 32, 3)


def test_osdataset_committed_manifest_and_256_version(tmp_path):
    fake = make_osdataset(tmp_path / "OSdataset", size=512)
    ds = build("osdataset", fake.root)
    assert len(ds.manifest("test").ids) == 424 and len(ds.manifest("train").ids) == 2011
    with pytest.raises(DatasetError, match=r"419 of the 424 pairs listed in .*osdataset/test.txt(.|\n)*512/test/sar100.png"):
        ds.ids("test")
    small = make_osdataset(tmp_path / "OS256", size=256)
    ds256 = build("osdataset_256", small.root)
    assert ds256.manifest("test") is None  # 256 numbering not verified: no manifest, files on disk
    assert all_ids(ds256) == small.ids
    assert ds256.ids("test") == ["1", "10", "2", "424", "5"]  # gaps kept, string order
    assert ds256.load("val", "3")[1].shape == (256, 256, 3)  # grey optical → 3 channels


def test_gfge_without_data_is_actionable(monkeypatch, tmp_path):
    ds = registry.build_dataset("gfge_so")
    with pytest.raises(DatasetError) as err:
        ds.ids("test")
    msg = str(err.value)
    for needed in ("--root", "REGBENCH_DATA", "GFGE/", "sar<N>.png", "Unknown", "SOMA"):
        assert needed in msg
    fake = make_gfge(tmp_path / "data", size=32)
    gf = build("gfge_so", fake.root)
    assert gf.ids("test") == fake.ids["test"] and gf.ids("train") == fake.ids["train"]
    with pytest.raises(DatasetError, match=r"<root>/GFGE/val/sar/sar<n>.png"):
        gf.ids("val")
    for n in ("x1", "x2"):  # SOMA's loader also pairs identical names in sar/ and opt/
        for kind in ("sar", "opt"):
            (fake.root / "GFGE/val" / kind).mkdir(parents=True, exist_ok=True)
            (fake.root / "GFGE/val" / kind / f"{n}.png").write_bytes((fake.root / "GFGE/test/sar/sar3.png").read_bytes())
    assert build("gfge_so", fake.root, naming="same_name").ids("val") == ["x1", "x2"]


def test_qxs_seeded_split_partitions_the_pairs(tmp_path):
    fake = make_qxs(tmp_path / "q", size=256)
    ds = build("qxs_saropt", fake.root)
    splits = all_ids(ds)
    flat = [i for ids in splits.values() for i in ids]
    assert sorted(flat) == fake.ids["all"] and len(set(flat)) == len(flat)


def test_root_lookup_order(tmp_path, monkeypatch):
    env_copy = make_sopatch(tmp_path / "data" / "SOPatch", size=32)
    user_copy = make_sopatch(tmp_path / "other" / "SOPatch", size=32)
    config = tmp_path / "user.yaml"
    config.write_text(f"data:\n  whu_sen_city: {user_copy.root}\n")
    monkeypatch.setenv("REGBENCH_CONFIG", str(config))
    root = lambda **sets: registry.build_dataset("whu_sen_city", {"size": 32, **sets}).root  # noqa: E731
    assert root() == user_copy.root  # user config
    monkeypatch.setenv("REGBENCH_DATA", str(tmp_path / "data"))
    assert root() == env_copy.root  # $REGBENCH_DATA/SOPatch (alias) before the user config
    assert registry.build_dataset("whu_sen_city", {"size": 32}).ids("test") == env_copy.ids["WHU-SEN-City/test"]
    assert root(root="/elsewhere") == Path("/elsewhere")  # --root wins
    monkeypatch.setenv("REGBENCH_DATA", str(tmp_path / "empty"))
    assert root() == user_copy.root  # nothing under $REGBENCH_DATA: the user config
    config.unlink()
    assert root() == tmp_path / "empty" / "whu_sen_city"  # then $REGBENCH_DATA/<name>, whose check says what is missing
    monkeypatch.delenv("REGBENCH_DATA")
    with pytest.raises(DatasetError, match="no data root for dataset 'whu_sen_city'(.|\n)*REGBENCH_DATA"):
        root()


# -------------------------------------------------------------------------------- manifests
def test_manifests_are_stable_and_used(tmp_path, cards):
    a = make_sen1_2(tmp_path / "copy-a", size=32)
    b = make_sen1_2(tmp_path / "elsewhere" / "copy-b", size=32)
    out_a, out_b = tmp_path / "ma", tmp_path / "mb"
    pa = write_manifests("sen1_2", a.root, out=out_a, sets={"size": 32})
    pb = write_manifests("sen1_2", b.root, out=out_b, sets={"size": 32})
    assert [p.read_bytes() for p in pa] == [p.read_bytes() for p in pb]  # no machine paths, same order
    assert all(str(a.root) not in p.read_text() for p in pa)

    written = write_manifests("sen1_2", a.root, sets={"size": 32})  # into the (scratch) committed folder
    assert written[0].parent == cards / "datasets" / "sen1_2"
    ds = build("sen1_2", a.root, size=32)
    split = next(s for s in ds.splits if ds.manifest(s) is not None and ds.manifest(s).ids)
    listed = ds.ids(split)
    victim = listed[0]
    sar_path, opt_path = ds.paths(split, victim)
    sar_path.unlink()
    ds = build("sen1_2", a.root, size=32)
    with pytest.raises(DatasetError, match=f"1 of the {len(listed)} pairs(.|\n)*{Path(ds.layout().paths(split, victim)[0]).name}"):
        ds.ids(split)
    with pytest.raises(DatasetError, match="lack their partner"):
        write_manifests("sen1_2", a.root, splits=[split], sets={"size": 32})
    opt_path.unlink()
    with pytest.raises(DatasetError, match="differs"):  # a partial copy cannot silently replace the split
        write_manifests("sen1_2", a.root, splits=[split], sets={"size": 32})


def test_manifest_checksum_refuses_edits(cards):
    m = Manifest("qxs_saropt", "test", ("1", "2", "30"), "a rule")
    path = cards / "datasets" / "qxs_saropt" / "test.txt"
    path.parent.mkdir(parents=True)
    path.write_text(m.to_text())
    assert load_manifest("qxs_saropt", "test") == m
    path.write_text(m.to_text().replace("30\n", ""))
    with pytest.raises(DatasetError, match="fails its count/checksum"):
        load_manifest("qxs_saropt", "test")
    with pytest.raises(ValueError, match="sorted"):
        Manifest("x", "test", ("b", "a"), "rule")


# ----------------------------------------------------------------------------- data verify
def test_verify_names_missing_partner_corrupt_file_and_wrong_size(tmp_path):
    fake = make_folder(tmp_path / "f", defects=True)
    report = verify("folder", fake.root, limit=None)
    text = str(report)
    assert not report.ok
    assert f"{fake.orphan} has no partner {fake.orphan_missing}" in text
    assert f"{fake.corrupt}: cannot be decoded" in text
    assert f"{fake.wrong_size} is 40×40 but its partner" in text
    test = next(s for s in report.splits if s.split == "test")
    assert test.found == 4 and test.read == 8 and test.formats["sar 32×32 uint8 1ch"] == 3
    assert verify("folder", make_folder(tmp_path / "clean").root).ok is False  # no val/ split folder
    result = CliRunner().invoke(data, ["verify", "--dataset", "folder", "--root", str(fake.root)])
    assert result.exit_code == 1 and fake.corrupt in result.output


def test_verify_counts_against_the_manifest(tmp_path):
    fake = make_osdataset(tmp_path / "OSdataset", size=512)
    report = verify("osdataset", fake.root)
    test = next(s for s in report.splits if s.split == "test")
    assert (test.found, test.expected, len(test.missing)) == (5, 424, 419)
    assert "512/test/sar100.png + 512/test/opt100.png" in str(report)
    assert "ERROR" in str(verify("osdataset", tmp_path / "nowhere"))


def test_verify_sopatch_defects_and_clean_copy(tmp_path):
    fake = make_sopatch(tmp_path / "SOPatch", size=32, defects=True)
    text = str(verify("sopatch_sen1_2", fake.root, limit=None, sets={"size": 32}))
    assert fake.orphan in text and fake.corrupt in text and fake.wrong_size in text
    clean = verify("whu_sen_city", fake.root, limit=None, sets={"size": 32})
    whu = {s.split: s for s in clean.splits}
    assert whu["test"].problems == [] and whu["val"].found == 1 and whu["train"].error


def test_info_says_what_and_where():
    text = info("osdataset")
    assert "CC BY-NC" in text and "<root>/512/{train,val,test}/sar<N>.png" in text and "424 pairs" in text
    assert "Unknown" in info("gfge_so") and "mediatum.ub.tum.de/1436631" in info("sen1_2")


# ------------------------------------------------------------------------- loading and runs
def test_dataloader_yields_deformed_pairs(tmp_path):
    fake = make_folder(tmp_path / "f", size=64)
    ds = build("folder", fake.root)
    ids = ds.ids("test")
    for workers in (0, 2):
        pairs = list(pair_loader(ds, "test", ids, "main", workers))
        assert [p.pair_id for p in pairs] == ids
        p = pairs[1]
        params = protocol.draw_deformation(protocol.get_protocol("main"), "folder", "test", ids[1])
        assert np.allclose(p.gt_matrix, np.linalg.inv(protocol.deformation_matrix(params, 64, 64)))
        assert p.sar.shape == (64, 64) and p.opt.shape == (64, 64, 3)
    assert bench_loading(ds, "test", 5, 0) > 0


def test_identity_run_end_to_end_on_fake_folder(tmp_path):
    from regbench.runner import evaluate

    fake = make_folder(tmp_path / "f", size=64)
    res = evaluate("identity", "folder", "test", "none", device="cpu", dataset_sets={"root": str(fake.root)},
                   results_dir=tmp_path / "results", log_mlflow=False, warmup=0)
    assert res.record["n_pairs"] == len(fake.ids["test"]) and res.summary["cmr_1px"] == 1.0
    res = evaluate("identity", "folder", "test", "main", device="cpu", dataset_sets={"root": str(fake.root)},
                   results_dir=tmp_path / "results", log_mlflow=False, warmup=0)
    assert res.summary["cmr_1px"] < 1.0  # the deformation is applied


def test_sen12ms_geotiffs_and_published_lists(tmp_path):
    fake = make_sen12ms(tmp_path / "SEN12MS", size=32)
    ds = build("sen12ms", fake.root, size=32)
    assert all_ids(ds) == fake.ids  # the unlisted fall pair is in no split
    sar, opt = ds.load("test", "ROIs2017_winter_3_p5")
    assert sar.shape == (32, 32) and opt.shape == (32, 32, 3) and sar.dtype == opt.dtype == np.float32
    assert 0 <= sar.min() and sar.max() <= 1 and sar.min() == 0 and sar.max() == 1  # dB clipped to db_range
    (fake.root / "test_list.txt").unlink()
    with pytest.raises(DatasetError, match="test_list.txt is missing"):
        build("sen12ms", fake.root, size=32).ids("train")
    broken = make_sen12ms(tmp_path / "broken", size=32, defects=True)
    assert f"{broken.corrupt}: cannot be decoded" in str(verify("sen12ms", broken.root, limit=None, sets={"size": 32}))
    with pytest.raises(DatasetError, match=f"cannot decode .*{Path(broken.corrupt).name}"):
        build("sen12ms", broken.root, size=32).load("test", "ROIs2017_winter_3_p9")


def test_spacenet6_tiles_split_by_strip(tmp_path):
    fake = make_spacenet6(tmp_path / "SN6", size=48)
    ds = build("spacenet6", fake.root, size=48)
    splits = {s: list(ds.scan(s).pairs) for s in ds.splits}  # no val strip in this copy: scan, not ids
    assert sorted(i for ids in splits.values() for i in ids) == fake.ids["all"]
    assert sorted(splits["test"]) == ["20190822065725_20190822070012_tile_17", "20190822065725_20190822070012_tile_3"]
    sar, opt = ds.load("test", "20190822065725_20190822070012_tile_3")
    assert sar.shape == (48, 48) and opt.shape == (48, 48, 3) and opt.dtype == np.float32
    assert (sar[:, :12] == 0).all() and sar[:, 12:].max() == 1.0 and 0 < sar[:, 12:].mean() < 1  # no-data stays 0
