"""Which modalities a retraining trains: the trigger form's choice (``orchestration.MODALITY_CHOICES``), where
"champion" reproduces production's model."""

from __future__ import annotations

import logging

from rakuten_ml.errors import ConfigurationError
from rakuten_ml.settings import Settings

log = logging.getLogger(__name__)

CHOICES: dict[str, tuple[str, ...]] = {"text+image": ("text", "image"), "text": ("text",)}
SAME_AS_CHAMPION = "champion"
# A fresh install has no champion to copy: the platform's model is the fused one.
FIRST_MODEL = CHOICES["text+image"]


def resolve_modalities(settings: Settings, choice: str) -> tuple[str, ...]:
    """The modalities for ``choice``; a drift-triggered retrain keeps the champion's (its ``modalities`` tag)."""
    if choice in CHOICES:
        return CHOICES[choice]
    if choice != SAME_AS_CHAMPION:
        raise ConfigurationError(f"modalities {choice!r} is not one of {[SAME_AS_CHAMPION, *CHOICES]}")
    from rakuten_ml.promotion.aliases import ModelRegistry

    registry = ModelRegistry(settings)
    champion = registry.state().champion
    if champion is None:
        log.info("no champion yet: training %s", "+".join(FIRST_MODEL))
        return FIRST_MODEL
    tagged = registry.version(champion).tags.get("modalities", "")
    modalities = tuple(m for m in tagged.split(",") if m)
    if not modalities:
        log.warning("champion v%s has no modalities tag: training %s", champion, "+".join(FIRST_MODEL))
        return FIRST_MODEL
    return modalities
