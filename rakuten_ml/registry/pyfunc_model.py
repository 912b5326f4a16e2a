"""The fused classifier as one MLflow pyfunc model.

Input columns: ``designation`` (str), ``description`` (str, optional) and ``image`` (JPEG bytes
or base64 text, optional). Output: ``prdtypecode``, ``probability``, ``decision``, ``modality``
and one ``proba_<code>`` column per class. Loading needs the ``rakuten_ml`` package and the
pickled :class:`FusedClassifier` artifact, nothing from the training run.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

CLASSIFIER_ARTIFACT = "classifier"
INPUT_COLUMNS = ("designation", "description", "image")


def decode_images(values: Sequence[Any]) -> list[bytes | None]:
    """Bytes pass through, base64 text is decoded; anything else means 'no image'."""
    images: list[bytes | None] = []
    for value in values:
        if isinstance(value, (bytes, bytearray)) and value:
            images.append(bytes(value))
        elif isinstance(value, str) and value:
            try:
                images.append(base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError):
                images.append(None)
        else:
            images.append(None)
    return images


class RakutenClassifierPyfunc(PythonModel):
    def load_context(self, context: Any) -> None:
        import joblib

        self.classifier = joblib.load(context.artifacts[CLASSIFIER_ARTIFACT])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = pd.DataFrame(model_input).copy()
        for column in ("designation", "description"):
            if column not in frame:
                frame[column] = ""
            frame[column] = frame[column].fillna("").astype(str)
        images = decode_images(frame["image"].tolist()) if "image" in frame else None
        return self.classifier.predict(frame[["designation", "description"]], images).reset_index(drop=True)
