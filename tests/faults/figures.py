"""The fault suite's figures of its last run (faults injected, rows checked, rows lost, duplicates), one
JSON file per module under ``var/faults/``: docs/reliability.md quotes them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FIGURES_DIR = Path(__file__).resolve().parents[2] / "var" / "faults"


def record_figures(name: str, figures: dict[str, Any]) -> Path:
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    path = FIGURES_DIR / f"{name}.json"
    path.write_text(json.dumps({"recorded_at": datetime.now(UTC).isoformat(timespec="seconds"), **figures}, indent=2) + "\n")
    return path
