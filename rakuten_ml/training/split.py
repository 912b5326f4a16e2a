"""The one train/evaluation split every model of a snapshot is trained and judged on."""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split


def stratified_split(products: pd.DataFrame, share: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified by class (seed 42, 80/20 like the seed report); singleton classes stay in train."""
    counts = products["prdtypecode"].value_counts()
    rare = products["prdtypecode"].map(counts) < 2
    splittable = products[~rare]
    train, evaluation = train_test_split(splittable, test_size=share, random_state=seed, stratify=splittable["prdtypecode"])
    train = pd.concat([train, products[rare]])
    return train.sort_values("productid"), evaluation.sort_values("productid")
