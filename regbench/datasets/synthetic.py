"""``synthetic``: procedural SAR–optical pairs, generated from a seed and cached on disk.

Each pair is one land-cover scene (crop parcels, meadows, bare soil, forest, rivers and lakes,
roads, buildings on a gently rolling terrain) rendered twice on the same ground grid:

* **optical** RGB: class reflectance with per-parcel variation, crop rows, tree crowns,
  gable roofs, sun hill-shading and building shadows cast along a random sun direction;
* **SAR** amplitude: class backscatter that does not follow optical brightness (roads and bare
  soil dark, forest and buildings bright, water black), side-looking geometry (buildings lay
  over toward the sensor with a bright band and a double-bounce line at their foot, and cast a
  radar shadow away from it; forest edges facing the sensor are bright, the far edges are
  shadowed), terrain slopes toward the sensor brighter, bright point targets with no optical
  trace, and multiplicative Gamma speckle with ``looks`` looks (mean 1).

SAR values are amplitudes: ``sar = sqrt(min(σ0 · speckle, 1))``, so ``sar**2`` over a
homogeneous region has a coefficient of variation ≈ ``1 / sqrt(looks)``. Ground sampling is
the same at every ``size``: a larger image covers more ground, objects keep their pixel sizes.

A pair's content depends only on (``seed``, ``size``, ``looks``, split, index) and
``GENERATOR_VERSION``; pairs are quantised to 8 bits and stored as one ``(H, W, 4)`` uint8
``.npy`` (R, G, B, SAR) per pair under ``<cache_dir>/<fingerprint>/<split>/``, written
atomically, so later loads take about a millisecond. (Speckle barely compresses: PNG would
save little space and cost milliseconds to decode.)
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..config import setting
from ..protocol import pair_seed
from ..store import atomic_write
from .base import DatasetConfig, PairDataset
from ..errors import DatasetError

GENERATOR_VERSION = 1  # bump whenever the generated pixels change: it renames the cache folder

MEADOW, CROP, BARE, FOREST, WATER, ROAD, BUILDING = range(7)
CLASS_NAMES = ("meadow", "crop", "bare", "forest", "water", "road", "building")


@dataclass
class Building:
    """A rectangular building: ``corners`` (4, 2) float32 pixel (x, y), clockwise on screen;
    ``height`` in pixels; ``flat`` roof (large halls) or gable/flat drawn at render time."""

    corners: np.ndarray
    height: float
    flat: bool = False


@dataclass
class Scene:
    """Ground truth of one scene (shared by both renderings).

    Attributes:
        labels: (H, W) uint8 class index (``CLASS_NAMES``); building footprints are ``BUILDING``.
        parcel: (H, W) int32 parcel id in [0, max + 1): renderers draw per-parcel tables.
        parcel_u, parcel_v: (H, W) float32 coordinates across / along the parcel strips.
        angle: orientation of the parcel grid (radians).
        terrain: (H, W) float32 elevation in pixels.
        buildings: footprints and heights.
    """

    labels: np.ndarray
    parcel: np.ndarray
    parcel_u: np.ndarray
    parcel_v: np.ndarray
    angle: float
    terrain: np.ndarray
    buildings: list[Building] = field(default_factory=list)


def _noise(rng: np.random.Generator, size: int, period: float, octaves: int = 3) -> np.ndarray:
    """(size, size) float32 fractal noise, zero mean, unit std; ``period`` = coarsest feature (px)."""
    out = np.zeros((size, size), np.float32)
    amp = 1.0
    for o in range(octaves):
        cells = max(2, int(math.ceil(size / (period / 2**o)))) + 3
        grid = rng.standard_normal((cells, cells)).astype(np.float32)
        big = cv2.resize(grid, (size + 2 * size // cells, size + 2 * size // cells), interpolation=cv2.INTER_CUBIC)
        off = size // cells
        out += amp * big[off : off + size, off : off + size]
        amp *= 0.5
    out -= out.mean()
    return out / (out.std() + 1e-6)


def _fine_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """(size, size) float32 white noise blurred by ``sigma`` px, unit std."""
    n = rng.standard_normal((size, size), dtype=np.float32)
    n = cv2.GaussianBlur(n, (0, 0), sigma)
    return n / (n.std() + 1e-6)


def _rect(center: np.ndarray, length: float, width: float, angle: float) -> np.ndarray:
    """(4, 2) corners of a rotated rectangle, long axis along ``angle``."""
    a = np.array([math.cos(angle), math.sin(angle)]) * length / 2
    b = np.array([-math.sin(angle), math.cos(angle)]) * width / 2
    return np.stack([center - a - b, center + a - b, center + a + b, center - a + b]).astype(np.float32)


_SHIFT = 4  # fixed-point bits for sub-pixel polygon drawing


def _fill(img: np.ndarray, pts: np.ndarray, value: float | tuple[float, ...]) -> None:
    """Fill the convex hull of points (N, 2) with anti-aliasing off, sub-pixel precise."""
    hull = cv2.convexHull(np.round(pts * (1 << _SHIFT)).astype(np.int32))
    cv2.fillConvexPoly(img, hull, value, lineType=cv2.LINE_8, shift=_SHIFT)


def _spread(mask: np.ndarray, k: int, direction: float) -> np.ndarray:
    """(H, W) bool: ``mask`` smeared by ``k - 1`` pixels toward +x (``direction`` > 0) or -x."""
    anchor = (k - 1, 0) if direction > 0 else (0, 0)
    return cv2.dilate(mask.astype(np.uint8), np.ones((1, k), np.uint8), anchor=anchor) > 0


def make_scene(rng: np.random.Generator, size: int) -> Scene:
    """Draw a land-cover scene of ``size``×``size`` pixels."""
    s = size
    area = (s / 256.0) ** 2
    ys, xs = np.mgrid[0:s, 0:s].astype(np.float32)

    # Parcels: a rotated "brick" layout — strips across u, each cut into fields along v.
    angle = float(rng.uniform(0, math.pi))
    ca, sa = math.cos(angle), math.sin(angle)
    u = (xs - s / 2) * ca + (ys - s / 2) * sa
    v = -(xs - s / 2) * sa + (ys - s / 2) * ca
    half = s * 0.75
    widths = rng.uniform(22, 70, size=int(2 * half / 22) + 2)
    cuts = -half + np.cumsum(widths)
    strip = np.searchsorted(cuts, u).astype(np.int32)
    n_strips = len(cuts) + 1
    lengths = rng.uniform(25, 110, size=n_strips).astype(np.float32)
    offsets = rng.uniform(0, 110, size=n_strips).astype(np.float32)
    max_cells = int(2 * half / 25) + 6
    cell = np.floor((v + half + offsets[strip]) / lengths[strip]).astype(np.int32)
    parcel = strip * max_cells + cell
    n_parcels = n_strips * max_cells
    kinds = rng.choice([CROP, MEADOW, BARE, FOREST], size=n_parcels, p=[0.5, 0.25, 0.12, 0.13]).astype(np.uint8)
    labels = kinds[parcel]

    # Hedgerows: 2–3 px tree lines along the borders of some parcels.
    edge = np.zeros((s, s), bool)
    edge[:, 1:] |= parcel[:, 1:] != parcel[:, :-1]
    edge[1:, :] |= parcel[1:, :] != parcel[:-1, :]
    hedged = rng.random(n_parcels) < 0.25
    hedge = cv2.dilate((edge & hedged[parcel]).astype(np.uint8), np.ones((2, 2), np.uint8)) > 0
    labels[hedge] = FOREST

    # Terrain (elevation in px) and natural woodland patches.
    terrain = _noise(rng, s, period=200, octaves=2) * rng.uniform(2, 10)
    woods = _noise(rng, s, period=90, octaves=4)
    labels[woods > rng.uniform(1.0, 2.2)] = FOREST

    # Water: a meandering river and/or a lake, sharp banks.
    water = np.zeros((s, s), np.uint8)
    for _ in range(min(rng.poisson(0.6 * math.sqrt(area)), max(1, int(math.sqrt(area))))):
        phi = rng.uniform(0, math.pi)
        t = np.linspace(-s, s, 200)
        lateral = sum(rng.uniform(5, 30) * np.sin(2 * np.pi * t / rng.uniform(60, 250) + rng.uniform(0, 6.3)) for _ in range(3))
        c0 = rng.uniform(0.2 * s, 0.8 * s, size=2)
        pts = c0 + np.outer(t, [math.cos(phi), math.sin(phi)]) + np.outer(lateral, [-math.sin(phi), math.cos(phi)])
        cv2.polylines(water, [np.round(pts * 16).astype(np.int32)], False, 1, int(rng.uniform(5, 18)), cv2.LINE_8, 4)
    if rng.random() < 0.35:
        lake = _noise(rng, s, period=120, octaves=3)
        water[lake > rng.uniform(1.6, 2.4)] = 1
    labels[water > 0] = WATER

    # Roads: straight, some along the parcel grid (between strips), some at random angles.
    roads = np.zeros((s, s), np.uint8)
    n_roads = 1 + min(rng.poisson(1.5 * math.sqrt(area)), int(3 * math.sqrt(area)))
    road_lines: list[tuple[np.ndarray, float]] = []
    for _ in range(n_roads):
        if rng.random() < 0.6:
            phi = angle + math.pi / 2 * rng.integers(0, 2)
        else:
            phi = rng.uniform(0, math.pi)
        c = rng.uniform(0.1 * s, 0.9 * s, size=2)
        d = np.array([math.cos(phi), math.sin(phi)])
        p0, p1 = c - 2 * s * d, c + 2 * s * d
        width = int(rng.integers(2, 6))
        cv2.line(roads, tuple(np.round(p0 * 16).astype(int)), tuple(np.round(p1 * 16).astype(int)), 1, width, cv2.LINE_8, 4)
        road_lines.append((c, phi))
    labels[roads > 0] = ROAD

    # Buildings: a village around a centre plus houses along the roads.
    buildings: list[Building] = []
    free = (labels != WATER) & (labels != ROAD)
    candidates: list[tuple[np.ndarray, float, bool]] = []  # centre, orientation, large (industrial)
    if rng.random() < 0.75:
        centre = rng.uniform(0.15 * s, 0.85 * s, size=2)
        spread = rng.uniform(20, 60)
        for _ in range(rng.poisson(25 * area)):
            candidates.append((centre + rng.normal(0, spread, size=2), angle + rng.normal(0, 0.05), False))
    for c, phi in road_lines:
        d = np.array([math.cos(phi), math.sin(phi)])
        n = np.array([-d[1], d[0]])
        for _ in range(rng.poisson(6 * math.sqrt(area))):
            along = rng.uniform(-s, s)
            side = rng.choice([-1.0, 1.0]) * rng.uniform(9, 16)
            candidates.append((c + along * d + side * n, phi + rng.normal(0, 0.05), False))
    if road_lines and rng.random() < 0.3:  # an industrial estate beside a road: a few large flat halls
        c, phi = road_lines[0]
        d = np.array([math.cos(phi), math.sin(phi)])
        n = np.array([-d[1], d[0]])
        along = rng.uniform(-0.4 * s, 0.4 * s)
        for _ in range(rng.integers(2, 6)):
            along += rng.uniform(30, 50)
            side = rng.choice([-1.0, 1.0]) * rng.uniform(20, 30)
            candidates.append((c + along * d + side * n, phi, True))
    for centre, phi, large in candidates:
        length, width = (rng.uniform(25, 45), rng.uniform(15, 28)) if large else (rng.uniform(7, 20), rng.uniform(6, 11))
        corners = _rect(centre, length, width, phi)
        x0, y0 = np.floor(corners.min(0)).astype(int) - 3
        x1, y1 = np.ceil(corners.max(0)).astype(int) + 4
        if x0 < 0 or y0 < 0 or x1 > s or y1 > s:
            continue
        probe = np.zeros((y1 - y0, x1 - x0), np.uint8)
        _fill(probe, corners - [x0, y0], 1)
        inside = probe > 0
        window = (slice(y0, y1), slice(x0, x1))
        if not free[window][inside].all():
            continue
        free[window] &= ~cv2.dilate(probe, np.ones((5, 5), np.uint8)).astype(bool)
        labels[window][inside] = BUILDING
        buildings.append(Building(corners, float(rng.uniform(3, 6) if large else rng.uniform(1.5, 4.5)), large))
    return Scene(labels, parcel, u, v, angle, terrain.astype(np.float32), buildings)


def render_optical(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1] of a scene."""
    labels, s = scene.labels, scene.labels.shape[0]
    n_parcels = int(scene.parcel.max()) + 1
    crop_palette = np.array([[0.30, 0.46, 0.16], [0.62, 0.58, 0.30], [0.48, 0.40, 0.26], [0.40, 0.52, 0.22], [0.70, 0.66, 0.42]], np.float32)
    crop_rgb = crop_palette[rng.integers(0, len(crop_palette), size=n_parcels)] * rng.uniform(0.8, 1.2, size=(n_parcels, 1))
    meadow_rgb = np.array([0.26, 0.40, 0.16], np.float32) * rng.uniform(0.8, 1.2, size=(n_parcels, 3))
    bare_rgb = np.array([0.60, 0.50, 0.38], np.float32) * rng.uniform(0.85, 1.25, size=(n_parcels, 1))
    period = rng.uniform(3, 7, size=n_parcels).astype(np.float32)
    along_u = rng.random(n_parcels) < 0.5
    tint = np.array([0.07, 0.13, 0.20], np.float32) if rng.random() < 0.7 else np.array([0.22, 0.27, 0.25], np.float32)
    table = np.zeros((len(CLASS_NAMES), n_parcels, 3), np.float32)
    table[CROP], table[MEADOW], table[BARE] = crop_rgb, meadow_rgb, bare_rgb
    table[FOREST] = [0.11, 0.21, 0.09]
    table[WATER] = tint
    table[ROAD] = rng.uniform(0.45, 0.7)
    p = scene.parcel
    rgb = table[labels, p]
    # texture: crop rows along one side of each parcel, tree crowns, ripples, soil/grass variation
    phase = np.where(along_u[p], scene.parcel_u, scene.parcel_v) / period[p]
    texture = np.where(labels == CROP, 1 + 0.12 * np.sin(2 * np.pi * phase), 1 + 0.06 * _noise(rng, s, 40, 3))
    texture = np.where(labels == FOREST, 1 + 0.35 * _fine_noise(rng, s, 1.3), texture)
    texture = np.where(labels == WATER, 1 + 0.08 * _noise(rng, s, 60, 2), texture)
    # hill shading (sun from a random azimuth) before buildings
    sun = rng.uniform(0, 2 * math.pi)
    gx = cv2.Sobel(scene.terrain, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(scene.terrain, cv2.CV_32F, 0, 1, ksize=3) / 8
    rgb *= (texture * np.clip(1 + 2.5 * (gx * math.cos(sun) + gy * math.sin(sun)), 0.6, 1.4))[..., None]
    # buildings: cast shadow away from the sun, then gable or flat roofs
    shadow = np.zeros((s, s), np.uint8)
    to_shadow = -np.array([math.cos(sun), math.sin(sun)], np.float32)
    roofs = np.array([[0.62, 0.30, 0.24], [0.52, 0.52, 0.54], [0.80, 0.78, 0.74], [0.40, 0.28, 0.24]], np.float32)
    for b in scene.buildings:
        _fill(shadow, np.concatenate([b.corners, b.corners + 0.8 * b.height * to_shadow]), 1)
    rgb[(shadow > 0) & (labels != BUILDING)] *= 0.45
    for b in scene.buildings:
        colour = roofs[rng.integers(0, len(roofs))] * rng.uniform(0.85, 1.15)
        c = b.corners
        if not b.flat and rng.random() < 0.8:  # gable: two halves split along the ridge, lit differently
            m01, m23 = (c[0] + c[3]) / 2, (c[1] + c[2]) / 2
            _fill(rgb, np.stack([c[0], c[1], m23, m01]), tuple(float(x) for x in colour * 1.15))
            _fill(rgb, np.stack([m01, m23, c[2], c[3]]), tuple(float(x) for x in colour * 0.8))
        else:
            _fill(rgb, c, tuple(float(x) for x in colour))
    rgb = cv2.GaussianBlur(rgb, (0, 0), 0.6)
    # acquisition: per-band gain (season, illumination, atmosphere) and a mild haze
    rgb = rgb * rng.uniform(0.9, 1.12, size=3).astype(np.float32) + np.float32(rng.uniform(0, 0.06))
    rgb += np.float32(0.01) * rng.standard_normal(rgb.shape, dtype=np.float32)
    return np.clip(rgb, 0, 1)


def render_sar(scene: Scene, rng: np.random.Generator, looks: float) -> np.ndarray:
    """(H, W) float32 SAR amplitude in [0, 1] of a scene (sensor on the left or right side)."""
    labels, s = scene.labels, scene.labels.shape[0]
    n_parcels = int(scene.parcel.max()) + 1
    look = 1.0 if rng.random() < 0.5 else -1.0  # +1: sensor at the left, looking toward +x
    p = scene.parcel
    # per-class σ0 (linear intensity), per-parcel variation independent of the optical colours
    table = np.zeros((len(CLASS_NAMES), n_parcels), np.float32)
    table[CROP] = rng.uniform(0.05, 0.35, size=n_parcels)
    table[MEADOW] = rng.uniform(0.07, 0.14, size=n_parcels)
    table[BARE] = rng.uniform(0.02, 0.07, size=n_parcels)
    table[FOREST] = 0.30
    table[WATER] = 0.004 if rng.random() < 0.7 else 0.015
    table[ROAD] = 0.008
    sigma = table[labels, p]
    texture = np.where(labels == FOREST, np.exp(0.25 * _fine_noise(rng, s, 2.0)), 1 + 0.15 * _noise(rng, s, 50, 3))
    forest = labels == FOREST
    # terrain: slopes facing the sensor are brighter
    gx = cv2.Sobel(scene.terrain, cv2.CV_32F, 1, 0, ksize=3) / 8
    sigma *= texture * np.clip(1 + 2.5 * look * gx, 0.4, 2.0)
    # forest edges: bright where the canopy faces the sensor, shadow behind it
    behind = _spread(forest, 4, look)
    front = _spread(~forest, 3, look)
    sigma[behind & ~forest & (labels != BUILDING)] *= 0.15
    sigma[front & forest] *= 2.5
    # buildings: radar shadow away from the sensor, roof displaced toward it, layover, double bounce
    inc = math.radians(rng.uniform(30, 45))
    shadow = np.zeros((s, s), np.uint8)
    roof = np.zeros((s, s), np.float32)
    layover = np.zeros((s, s), np.float32)
    foot = labels == BUILDING
    bounce = np.zeros((s, s), np.uint8)
    for b in scene.buildings:
        lay = np.array([-look * b.height / math.tan(inc), 0], np.float32)
        shd = np.array([look * b.height * math.tan(inc), 0], np.float32)
        c = b.corners
        _fill(shadow, np.concatenate([c + lay, c + shd]), 1)
        _fill(roof, c + lay, float(rng.uniform(0.08, 0.4)))
        _fill(layover, np.concatenate([c, c + lay]), float(rng.uniform(0.6, 1.2)))
        for i in range(4):  # walls facing the sensor (clockwise corners: outward normal (dy, -dx))
            a, e = c[i], c[(i + 1) % 4]
            if (e - a)[1] * look < 0:
                cv2.line(bounce, tuple(np.round(a * 16).astype(int)), tuple(np.round(e * 16).astype(int)), 1, 1, cv2.LINE_8, 4)
    sigma[shadow > 0] = 0.001
    sigma = np.where(roof > 0, roof, sigma)
    lay_band = (layover > 0) & ~foot
    sigma[lay_band] = layover[lay_band]
    sigma[bounce > 0] = 4.0
    # SAR-only point targets (pylons, vehicles, fences): a few saturated pixels, no optical trace
    n_points = rng.poisson(12 * (s / 256.0) ** 2)
    sigma[rng.integers(0, s, n_points), rng.integers(0, s, n_points)] = 6.0
    # calibration gain of the acquisition, speckle (mean 1, `looks` looks), then amplitude
    sigma *= np.float32(rng.uniform(0.7, 1.4))
    speckle = rng.standard_gamma(looks, size=(s, s), dtype=np.float32) / np.float32(looks)
    return np.sqrt(np.clip(sigma * speckle, 0, 1))


def generate_pair(seed: int, size: int, looks: float) -> tuple[np.ndarray, np.ndarray, Scene]:
    """One aligned pair from an integer seed: (SAR (H, W), optical (H, W, 3), scene)."""
    rng = np.random.default_rng(seed)
    scene = make_scene(rng, size)
    opt = render_optical(scene, np.random.default_rng([seed, 1]))
    sar = render_sar(scene, np.random.default_rng([seed, 2]), looks)
    return sar, opt, scene


def default_cache_dir() -> Path:
    """``$REGBENCH_CACHE/synthetic``, else ``~/.cache/regbench/synthetic``."""
    env = os.environ.get("REGBENCH_CACHE")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "regbench") / "synthetic"


class Synthetic(PairDataset):
    """Procedural SAR–optical pairs (see the module docstring); ids ``<split>-0000`` …"""

    name = "synthetic"

    @dataclass
    class Config(DatasetConfig):
        """``root`` is unused (nothing is read from disk but the cache)."""

        seed: int = 0
        size: int = setting(256, ge=64)
        looks: float = setting(4.0, gt=0)
        train: int = setting(1000, ge=0)
        val: int = setting(50, ge=0)
        test: int = setting(200, ge=0)
        cache_dir: str | None = None

    config: "Synthetic.Config"

    @property
    def fingerprint(self) -> str:
        """``synthetic-v<GENERATOR_VERSION>-<hash of seed, size, looks>``; names the cache folder."""
        c = self.config
        key = json.dumps({"seed": c.seed, "size": c.size, "looks": float(c.looks), "version": GENERATOR_VERSION}, sort_keys=True)
        return f"synthetic-v{GENERATOR_VERSION}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"

    @property
    def cache_root(self) -> Path:
        base = Path(self.config.cache_dir).expanduser() if self.config.cache_dir else default_cache_dir()
        return base / self.fingerprint

    def ids(self, split: str) -> list[str]:
        self.check_split(split)
        return [self._id(split, i) for i in range(getattr(self.config, split))]

    def _id(self, split: str, index: int) -> str:
        """``<split>-0042``: zero-padded to at least 4 digits so that the ids sort by index."""
        width = max(4, len(str(getattr(self.config, split) - 1)))
        return f"{split}-{index:0{width}d}"

    def _index(self, split: str, pair_id: str) -> int:
        self.check_split(split)
        n = getattr(self.config, split)
        num = pair_id.rpartition("-")[2]
        if not num.isdigit() or not 0 <= int(num) < n or pair_id != self._id(split, int(num)):
            raise DatasetError(f"synthetic: no pair {pair_id!r} in split {split!r} (ids are {self._id(split, 0)} … {self._id(split, n - 1)})")
        return int(num)

    def pair_seed(self, split: str, index: int) -> int:
        """The content seed of pair ``index`` of ``split`` (stable across processes and machines)."""
        return pair_seed("synthetic", str(GENERATOR_VERSION), str(self.config.seed), split, str(index))

    def generate(self, split: str, pair_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Generate a pair without the cache, quantised to 8 bits exactly as it is stored."""
        sar, opt, _ = generate_pair(self.pair_seed(split, self._index(split, pair_id)), self.config.size, self.config.looks)
        return _to_u8(sar), _to_u8(opt)

    def load(self, split: str, pair_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Aligned (SAR (H, W), optical (H, W, 3)) float32 in [0, 1]; generated and cached on first use."""
        self._index(split, pair_id)
        path = self.cache_root / split / f"{pair_id}.npy"
        size = self.config.size
        try:
            packed = np.load(path)  # (H, W, 4) uint8: R, G, B, SAR
        except (OSError, ValueError, EOFError):  # not cached yet (or unreadable)
            packed = None
        if packed is None or packed.shape != (size, size, 4) or packed.dtype != np.uint8:
            sar, opt = self.generate(split, pair_id)
            packed = np.concatenate([opt, sar[..., None]], axis=2)
            atomic_write(path, lambda f: np.save(f, packed))
        return packed[..., 3] / np.float32(255), packed[..., :3] / np.float32(255)


def _to_u8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def _benchmark(n: int = 20) -> None:
    """Print generation and cached-load times per pair at 256 and 512 pixels (wall and CPU)."""
    import time

    for size in (256, 512):
        with tempfile.TemporaryDirectory() as tmp:
            ds = Synthetic(Synthetic.Config(size=size, cache_dir=tmp))
            ids = ds.ids("test")[:n]
            generate_pair(0, size, ds.config.looks)  # warm-up
            times = []
            for _ in range(2):  # first pass generates and stores, second reads the cache
                wall, cpu = time.perf_counter(), time.process_time()
                for pair_id in ids:
                    ds.load("test", pair_id)
                times.append(((time.perf_counter() - wall) / n * 1e3, (time.process_time() - cpu) / n * 1e3))
            (gw, gc), (lw, lc) = times
            print(f"synthetic {size}x{size}: generate+store {gw:.1f} ms/pair (CPU {gc:.1f}), cached load {lw:.2f} ms/pair (CPU {lc:.2f})")


def _example(path: str, pair_id: str = "test-0002") -> None:
    """Write optical | SAR of one pair (seed 0, 256 px) side by side as a PNG."""
    with tempfile.TemporaryDirectory() as tmp:
        sar, opt = Synthetic(Synthetic.Config(cache_dir=tmp)).load("test", pair_id)
    gap = np.ones((sar.shape[0], 4, 3), np.float32)
    img = np.concatenate([opt, gap, np.repeat(sar[..., None], 3, axis=2)], axis=1)
    cv2.imwrite(path, _to_u8(img[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9])


if __name__ == "__main__":  # python -m regbench.datasets.synthetic [bench | example OUT.png]
    import sys

    if len(sys.argv) >= 3 and sys.argv[1] == "example":
        _example(sys.argv[2])
    else:
        _benchmark()
