"""Training and validation samples: a dataset split, deformed by a protocol, as torch tensors.

* Training (``fixed=False``): every sample gets a fresh similarity drawn from the protocol's
  ranges with a generator seeded by ``(seed, epoch, index)``, so a run is reproducible, a
  resumed run sees the same samples, and every epoch sees new deformations.
* Validation (``fixed=True``): the protocol's fixed per-pair deformation
  (:func:`regbench.protocol.draw_deformation`), the one evaluation uses.

The SAR image is warped by :func:`regbench.protocol.deform`, exactly as at evaluation time.
"""
from __future__ import annotations

import numpy as np
import torch

from ..datasets.base import PairDataset
from ..errors import DatasetError
from ..protocol import Protocol, deformed_pair, draw_deformation
from ..types import Pair


def pair_to_sample(pair: Pair) -> dict[str, torch.Tensor]:
    """``sar`` (1, H, W), ``opt`` (3, H, W) float32 in [0, 1] and ``gt_flow`` (H, W, 2) in pixels."""
    opt = pair.opt if pair.opt.ndim == 3 and pair.opt.shape[2] == 3 else np.repeat(pair.opt.reshape(*pair.shape, 1), 3, axis=2)
    return {
        "sar": torch.from_numpy(np.ascontiguousarray(pair.sar, dtype=np.float32))[None],
        "opt": torch.from_numpy(np.ascontiguousarray(opt, dtype=np.float32)).permute(2, 0, 1).contiguous(),
        "gt_flow": torch.from_numpy(pair.gt_flow()),
    }


def sample_to_pair(sample: dict[str, torch.Tensor]) -> Pair:
    """The inverse of :func:`pair_to_sample` for one (unbatched) sample, ground truth removed."""
    return Pair(sar=sample["sar"][0].numpy(), opt=sample["opt"].permute(1, 2, 0).numpy())


class DeformedPairs(torch.utils.data.Dataset):
    """A split of ``dataset`` as deformed training or validation samples.

    Args:
        dataset: the loader.
        split: which split.
        protocol: ranges of the random deformation (training) or the fixed one (validation).
        seed: run seed (training only).
        fixed: use the protocol's fixed per-pair deformation instead of a random one.
        limit: keep only the first ``limit`` ids (sorted), ``None`` for all.
    """

    def __init__(
        self, dataset: PairDataset, split: str, protocol: Protocol, seed: int = 0, fixed: bool = False, limit: int | None = None
    ) -> None:
        self.dataset, self.split, self.protocol, self.seed, self.fixed = dataset, split, protocol, seed, fixed
        self.ids = dataset.ids(split)[:limit]
        if not self.ids:
            raise DatasetError(f"dataset {dataset.name!r} has no pairs in split {split!r}; training needs some")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random deformations ``__getitem__`` draws."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.ids)

    def params(self, index: int) -> dict[str, float]:
        """Deformation parameters of sample ``index`` in the current epoch."""
        pair_id = self.ids[index]
        if self.fixed:
            return draw_deformation(self.protocol, self.dataset.name, self.split, pair_id)
        return self.protocol.draw(np.random.default_rng([self.seed, self.epoch, index]))

    def meta(self, index: int) -> dict:
        """What a method sees of sample ``index`` besides the images (as at evaluation)."""
        return {"dataset": self.dataset.name, "split": self.split, "pair_id": self.ids[index], "protocol": self.protocol.tag}

    def pair(self, index: int) -> Pair:
        """Sample ``index`` as a :class:`Pair` with ground truth."""
        return deformed_pair(self.dataset, self.split, self.ids[index], self.params(index), self.meta(index))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return pair_to_sample(self.pair(index))

