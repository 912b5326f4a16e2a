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
    """The modalities for ``choice``; "champion" keeps the champion's (its ``modalities`` tag), else the newest
    version's (registered, never promoted), else the platform's fused model."""
    if choice in CHOICES:
        return CHOICES[choice]
    if choice != SAME_AS_CHAMPION:
        raise ConfigurationError(f"modalities {choice!r} is not one of {[SAME_AS_CHAMPION, *CHOICES]}")
    from rakuten_ml.registry.gateway import ModelRegistry

    registry = ModelRegistry(settings)
    champion = registry.state().champion
    model = registry.version(champion) if champion else next(iter(registry.versions(limit=1)), None)
    modalities = tuple(m for m in (model.tags.get("modalities", "") if model else "").split(",") if m)
    if not modalities:
        log.info("no registered version says its modalities: training %s", "+".join(FIRST_MODEL))
        return FIRST_MODEL
    log.info("training %s, as %s v%s", "+".join(modalities), "champion" if champion else "the newest version",
             model.version if model else "?")
    return modalities
