"""What a job knows about the run that called it, whether an Airflow task or a command line."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rakuten_ml.errors import RakutenError
from rakuten_ml.orchestration import latest_event_extra


class JobSkipped(RakutenError):
    """Nothing to do, for a reason worth showing (the task ends *skipped*, with this message)."""


class JobFailed(RakutenError):
    """The job did what it could and the run must still fail (the task fails without a retry)."""


@dataclass(frozen=True)
class WithEvents:
    """A job's return value and the asset events it emits (asset URI -> event extra)."""

    value: Any
    events: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class JobContext:
    """The calling run: its id and type, the params its trigger form sent, and what triggered it.

    ``logical_date`` is None for runs an asset event started; ``as_of`` is always the day the run
    stands for (logical date, else the time the run was due, else now).
    """

    run_id: str = "manual"
    run_type: str = "manual"
    dag_id: str | None = None  # None outside Airflow (the CLI)
    params: Mapping[str, Any] = field(default_factory=dict)
    logical_date: datetime | None = None
    as_of: datetime = field(default_factory=lambda: datetime.now(UTC))
    triggering: Mapping[str, list[Any]] = field(default_factory=dict)  # asset URI -> events, oldest first
    recent_events: Callable[[str, int], list[Any]] | None = None  # asset URI, limit -> newest events first

    def param(self, name: str, default: Any = None) -> Any:
        """A form param; an empty field (None, "") is the default, as the forms document."""
        value = self.params.get(name)
        return default if value in (None, "") else value

    def triggering_events(self, uri: str) -> list[Any]:
        return list(self.triggering.get(uri.rstrip("/"), []))

    def latest_extra(self, uri: str) -> dict[str, Any]:
        """The extra of the newest event of ``uri`` among those that triggered the run ({} when none)."""
        return latest_event_extra(self.triggering_events(uri))

    def recent(self, uri: str, limit: int) -> list[Any]:
        return self.recent_events(uri, limit) if self.recent_events is not None else []
