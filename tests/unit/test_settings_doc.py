"""Every setting is documented, in one generated table that matches the code."""

from __future__ import annotations

from rakuten_ml.settings import Settings
from rakuten_ml.settings_doc import DOC_PATH, render


def test_every_setting_says_what_it_does():
    undocumented = [name for name, field in Settings.model_fields.items() if not (field.description or "").strip()]
    assert undocumented == []


def test_the_settings_page_is_generated_from_the_code():
    assert DOC_PATH.read_text() == render(), "docs/settings.md is stale: run `python -m rakuten_ml.settings_doc`"
    assert f"`RAKUTEN_{next(iter(Settings.model_fields)).upper()}`" in DOC_PATH.read_text()
