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
    return [
        Partition(i, int(chunk[0]), int(chunk[-1]), len(chunk))
        for i, chunk in enumerate(np.array_split(ordered, max(1, -(-len(ordered) // partition_size))))
        if len(chunk)
    ]
