"""Splitting a snapshot into productid-range partitions that mapped tasks score independently."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Partition:
    partition_id: int
    first_productid: int
    last_productid: int
    n_products: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def plan_partitions(productids: np.ndarray, partition_size: int) -> list[Partition]:
    """Contiguous productid ranges of at most ``partition_size`` products, deterministic for a snapshot."""
    if partition_size < 1:
        raise ValueError("partition_size must be >= 1")
    ordered = np.unique(np.asarray(productids, dtype=np.int64))
    return _split(ordered, max(1, -(-len(ordered) // partition_size)))


def split_partitions(productids: np.ndarray, n_partitions: int) -> list[Partition]:
    """``n_partitions`` contiguous, near-equal productid ranges.

    The plan depends on the snapshot and the count alone, so a resumed run re-derives the
    exact partitions it recorded (and skips the finished ones) whatever partition size it is given.
    """
    if n_partitions < 1:
        raise ValueError("n_partitions must be >= 1")
    return _split(np.unique(np.asarray(productids, dtype=np.int64)), n_partitions)


def _split(ordered: np.ndarray, n_partitions: int) -> list[Partition]:
    return [
        Partition(i, int(chunk[0]), int(chunk[-1]), len(chunk))
        for i, chunk in enumerate(np.array_split(ordered, n_partitions))
        if len(chunk)
    ]
