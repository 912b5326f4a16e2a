"""What the life cycle did, one entry per DAG run: the record the console timeline and the HTML report show."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

TRIGGER_REST = "REST API (as the UI's trigger form)"
TRIGGER_SCHEDULE = "schedule"


def asset_trigger(uri: str) -> str:
    return f"asset event {uri}"


@dataclass
class Step:
    """One DAG run of the story.

    ``outcome`` is one line for people; ``results`` keeps the tasks' return values (JSON) for the report;
    ``aliases`` is where champion / challenger / previous-champion pointed once the run had finished.
    """

    day: int
    date: str  # the simulated day, ISO
    dag_id: str
    run_id: str
    trigger: str
    state: str
    outcome: str
    aliases: dict[str, str | None] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)  # task id -> state
    results: dict[str, Any] = field(default_factory=dict)  # task id -> return value

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Timeline:
    steps: list[Step] = field(default_factory=list)
    traffic: list[dict[str, Any]] = field(default_factory=list)  # one TrafficSummary.as_dict() per day, with "day"
    notes: list[str] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)  # one simulate_reviewers() count per reviewer and day, with "day"

    def add(self, step: Step) -> Step:
        self.steps.append(step)
        return step

    def failed(self) -> list[Step]:
        return [s for s in self.steps if s.state != "success"]

    def as_dict(self) -> dict[str, Any]:
        return {"steps": [s.as_dict() for s in self.steps], "traffic": self.traffic, "notes": self.notes, "reviews": self.reviews}
