"""The procedural SAR–optical dataset: determinism, caching, modality gap, speckle, registry."""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from regbench import registry
from regbench.errors import DatasetError
from regbench.datasets.synthetic import BUILDING, CROP, FOREST, MEADOW, ROAD, WATER, Synthetic, generate_pair


@pytest.fixture
def ds(tmp_path: Path) -> Synthetic:
    return Synthetic(Synthetic.Config(cache_dir=str(tmp_path)))


def _digest(sar: np.ndarray, opt: np.ndarray) -> str:
    return hashlib.sha256(sar.tobytes() + opt.tobytes()).hexdigest()


def test_ids_shapes_dtypes_range(ds: Synthetic) -> None:
    assert ds.ids("test") == sorted(ds.ids("test"))
    assert len(ds.ids("test")) == 200 and ds.ids("test")[0] == "test-0000"
    assert (len(ds.ids("train")), len(ds.ids("val"))) == (1000, 50)
    sar, opt = ds.load("test", "test-0007")
    assert sar.shape == (256, 256) and opt.shape == (256, 256, 3)
    assert sar.dtype == np.float32 and opt.dtype == np.float32
    assert 0 <= sar.min() and sar.max() <= 1 and 0 <= opt.min() and opt.max() <= 1
    assert sar.std() > 0.05 and opt.std() > 0.05


def test_ids_sort_by_index_beyond_four_digits(tmp_path: Path) -> None:
    ids = Synthetic(Synthetic.Config(train=10001, cache_dir=str(tmp_path))).ids("train")
    assert ids == sorted(ids) and ids[0] == "train-00000" and ids[-1] == "train-10000"


def test_unknown_split_or_id_is_a_dataset_error(ds: Synthetic) -> None:
    with pytest.raises(DatasetError, match="no split"):
        ds.ids("holdout")
    for bad in ("test-0200", "val-0000", "test-x", "test-7", "xtest-0007"):
        with pytest.raises(DatasetError, match="no pair"):
            ds.load("test", bad)


def test_deterministic_within_and_across_processes(ds: Synthetic, tmp_path: Path) -> None:
    first = ds.generate("test", "test-0003")
    assert _digest(*first) == _digest(*ds.generate("test", "test-0003"))
    code = (
        "import hashlib, sys; from regbench.datasets.synthetic import Synthetic; "
        f"s, o = Synthetic(Synthetic.Config(cache_dir={str(tmp_path / 'other')!r})).generate('test', 'test-0003'); "
        "sys.stdout.write(hashlib.sha256(s.tobytes() + o.tobytes()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out == _digest(*first)


def test_splits_indices_and_seeds_differ(ds: Synthetic, tmp_path: Path) -> None:
    digests = {_digest(*ds.generate(split, f"{split}-0000")) for split in ("train", "val", "test")}
    digests.add(_digest(*ds.generate("test", "test-0001")))
    other = Synthetic(Synthetic.Config(seed=1, cache_dir=str(tmp_path)))
    digests.add(_digest(*other.generate("test", "test-0000")))
    assert len(digests) == 5


def test_cache_is_written_atomically_and_used(ds: Synthetic, monkeypatch: pytest.MonkeyPatch) -> None:
    sar, opt = ds.load("val", "val-0002")
    folder = ds.cache_root / "val"
    assert [p.name for p in folder.iterdir()] == ["val-0002.npy"]  # one file, no temp files left
    sar_u8, opt_u8 = ds.generate("val", "val-0002")
    np.testing.assert_array_equal(sar, sar_u8 / np.float32(255))  # the first load returns exactly what is stored
    np.testing.assert_array_equal(opt, opt_u8 / np.float32(255))

    def no_generation(*args: object) -> None:
        raise AssertionError("the second load regenerated the pair instead of reading the cache")

    monkeypatch.setattr(Synthetic, "generate", no_generation)
    sar2, opt2 = ds.load("val", "val-0002")
    np.testing.assert_array_equal(sar, sar2)
    np.testing.assert_array_equal(opt, opt2)


def _load_digests(ds: Synthetic) -> list[str]:
    return [_digest(*ds.load("test", i)) for i in ds.ids("test")[:3]]


def test_parallel_workers_share_the_cache_safely(ds: Synthetic) -> None:
    """Forked workers that race to generate and store the same pairs all read complete pairs."""
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        results = pool.map(_load_digests, [ds] * 8)
    assert all(r == results[0] for r in results)
    assert results[0] == [_digest(*(a / np.float32(255) for a in ds.generate("test", i))) for i in ds.ids("test")[:3]]
    assert sorted(p.name for p in (ds.cache_root / "test").iterdir()) == ["test-0000.npy", "test-0001.npy", "test-0002.npy"]


def test_unreadable_cache_file_is_regenerated(ds: Synthetic) -> None:
    path = ds.cache_root / "test" / "test-0004.npy"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"half a file")
    sar, opt = ds.load("test", "test-0004")
    sar_u8, opt_u8 = ds.generate("test", "test-0004")
    np.testing.assert_array_equal(sar, sar_u8 / np.float32(255))
    assert np.load(path).shape == (256, 256, 4)


def test_cache_dir_defaults_to_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGBENCH_CACHE", str(tmp_path))
    ds = Synthetic()
    assert ds.cache_root.parent == tmp_path / "synthetic"
    ds.load("test", "test-0000")
    assert (ds.cache_root / "test" / "test-0000.npy").is_file()


def test_fingerprint_follows_the_generator_config(tmp_path: Path) -> None:
    def fp(**kw: object) -> str:
        return Synthetic(Synthetic.Config(**kw)).fingerprint  # type: ignore[arg-type]

    base = fp()
    assert base == fp(cache_dir=str(tmp_path), test=10)  # where it is cached / how many: same pairs
    assert len({base, fp(seed=1), fp(size=128), fp(looks=1.0)}) == 4


@pytest.mark.parametrize("looks", [1.0, 4.0, 16.0])
def test_speckle_has_the_configured_looks(looks: float) -> None:
    """Over 8×8 blocks inside one parcel, intensity (amplitude²) has CV ≈ 1/sqrt(looks)."""
    sar, _, scene = generate_pair(42, 256, looks)
    intensity = sar.astype(np.float64) ** 2
    key = scene.labels.astype(np.int64) * 1_000_000 + scene.parcel
    w = 8
    blocks = lambda a: a.reshape(256 // w, w, 256 // w, w).swapaxes(1, 2).reshape(-1, w * w)  # noqa: E731
    k, lab, i = blocks(key), blocks(scene.labels), blocks(intensity)
    keep = (k == k[:, :1]).all(1) & np.isin(lab[:, 0], [MEADOW, CROP]) & (i.max(1) < 0.99)
    assert keep.sum() > 50
    cv = np.median(i[keep].std(1, ddof=1) / i[keep].mean(1))
    assert cv == pytest.approx(1 / np.sqrt(looks), rel=0.1)


def test_modality_gap_contrast_inversions() -> None:
    """Roads and bare-soil-like bright optical classes are dark in SAR, forest inverts, water is darkest."""
    opt_mean: dict[int, list[float]] = {c: [] for c in (MEADOW, FOREST, WATER, ROAD, BUILDING)}
    sar_mean: dict[int, list[float]] = {c: [] for c in opt_mean}
    corr = []
    for seed in range(6):
        sar, opt, scene = generate_pair(seed, 256, 4.0)
        grey = opt.mean(2)
        for c in opt_mean:
            m = scene.labels == c
            if m.sum() > 30:
                opt_mean[c].append(float(grey[m].mean()))
                sar_mean[c].append(float(sar[m].mean()))
        corr.append(np.corrcoef(sar.ravel(), grey.ravel())[0, 1])
    o = {c: np.mean(v) for c, v in opt_mean.items()}
    s = {c: np.mean(v) for c, v in sar_mean.items()}
    assert o[ROAD] > o[MEADOW] and s[ROAD] < s[MEADOW]  # roads: bright optical, dark SAR
    assert o[FOREST] < o[MEADOW] and s[FOREST] > s[MEADOW]  # forest: dark optical, bright SAR
    assert s[WATER] < min(s[c] for c in (MEADOW, FOREST, BUILDING))
    assert np.mean(corr) < 0.2  # intensities barely (or negatively) correlated


def test_buildings_lay_over_toward_the_sensor_and_cast_radar_shadow() -> None:
    """Along each image row, SAR pixels just outside a building are bright on one side, black on the other."""
    sar, _, scene = generate_pair(3, 256, 4.0)
    assert scene.buildings
    foot = scene.labels == BUILDING
    left = np.zeros_like(foot)
    right = np.zeros_like(foot)
    left[:, :-2] = foot[:, 2:] & ~foot[:, :-2]  # 2 px left of a footprint
    right[:, 2:] = foot[:, :-2] & ~foot[:, 2:]  # 2 px right of a footprint
    a, b = sar[left & ~(scene.labels == ROAD)].mean(), sar[right & ~(scene.labels == ROAD)].mean()
    assert max(a, b) > 0.6 and min(a, b) < 0.15


def test_registry_builds_both_cards(tmp_path: Path) -> None:
    ds = registry.build_dataset("synthetic", {"cache_dir": str(tmp_path)})
    assert isinstance(ds, Synthetic) and ds.config.size == 256 and len(ds.ids("test")) == 200
    big = registry.build_dataset("synthetic-512", {"cache_dir": str(tmp_path)})
    assert big.name == "synthetic-512" and len(big.ids("test")) == 200
    sar, opt = big.load("test", "test-0000")
    assert sar.shape == (512, 512) and opt.shape == (512, 512, 3)
    assert big.fingerprint != ds.fingerprint
