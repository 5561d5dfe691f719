"""Reading deformed test pairs with a torch ``DataLoader`` (OpenCV decoding in worker processes).

Each item is one pair read by the dataset loader with its SAR image warped by the protocol's fixed
deformation (:func:`regbench.protocol.deformed_pair`): what the runner evaluates.
"""
from __future__ import annotations

from torch.utils.data import DataLoader, Dataset

from .. import protocol as proto
from ..types import Pair
from .base import PairDataset


class ProtocolPairs(Dataset):
    """Deformed test pairs of ``ids``: read by the dataset loader, SAR warped by ``deformations``."""

    def __init__(self, ds: PairDataset, split: str, ids: list[str], deformations: dict[str, dict[str, float]],
                 meta: dict[str, str]) -> None:
        self.ds, self.split, self.ids, self.deformations, self.meta = ds, split, ids, deformations, meta

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> Pair:
        pair_id = self.ids[i]
        return proto.deformed_pair(self.ds, self.split, pair_id, self.deformations[pair_id], {**self.meta, "pair_id": pair_id})


def pair_loader(ds: PairDataset, split: str, ids: list[str], protocol: str = "main", workers: int = 0,
                deformations: dict[str, dict[str, float]] | None = None) -> DataLoader:
    """A DataLoader yielding one deformed :class:`~regbench.types.Pair` (with ground truth) per id.

    ``deformations`` defaults to the protocol's deterministic draw for each id — the values the
    runner's deformation manifest holds.
    """
    spec = proto.get_protocol(protocol)
    if deformations is None:
        deformations = {i: proto.draw_deformation(spec, ds.name, split, i) for i in ids}
    meta = {"dataset": ds.name, "split": split, "protocol": spec.tag}
    # no cv2.setNumThreads in workers: in a forked child it waits forever for the parent's pool threads
    return DataLoader(ProtocolPairs(ds, split, ids, deformations, meta), batch_size=None, num_workers=workers)
