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


def markdown_table(folder: Path = FIGURES_DIR) -> str:
    """The figures of every module's last run as the table docs/reliability.md shows."""
    lines = ["| module | recorded | faults injected / cases | rows checked | rows lost | duplicates |", "| --- | --- | --- | --- | --- | --- |"]
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        if "lines" in data:  # the serving soak keeps its own summary lines
            continue
        faults = data.get("faults_injected", data.get("cases", ""))
        rows = data.get("rows_checked", data.get("rows_reconciled", ""))
        twice = data.get("duplicates", data.get("rows_counted_twice", ""))
        lines.append(f"| {path.stem} | {data['recorded_at']} | {faults} | {rows} | {data.get('rows_lost', '')} | {twice} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    sys.stdout.write(markdown_table() + "\n")
