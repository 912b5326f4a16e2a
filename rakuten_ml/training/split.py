"""The one train/evaluation split every model of a snapshot is trained and judged on."""

from __future__ import annotations

import math

import pandas as pd
from sklearn.model_selection import train_test_split

from rakuten_ml.errors import TrainingError


def stratified_split(products: pd.DataFrame, share: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified by class (seed 42, 80/20 like the seed report); singleton classes stay in train."""
    counts = products["prdtypecode"].value_counts()
    rare = products["prdtypecode"].map(counts) < 2
    splittable = products[~rare]
    n_classes = splittable["prdtypecode"].nunique()
    n_held_out = math.ceil(share * len(splittable))  # as train_test_split counts it
    if min(n_held_out, len(splittable) - n_held_out) < n_classes:  # sklearn's own ValueError would not say what to do
        raise TrainingError(
            f"{len(splittable)} rows in {n_classes} classes are too few for a stratified {share:.0%} split (it needs at "
            f"least one row per class, {int(n_classes / share) + 1} rows); ingest more products, or train text only"
        )
    train, evaluation = train_test_split(splittable, test_size=share, random_state=seed, stratify=splittable["prdtypecode"])
    train = pd.concat([train, products[rare]])
    return train.sort_values("productid"), evaluation.sort_values("productid")
