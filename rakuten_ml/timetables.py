"""The platform's cron timetable: Airflow's cron trigger, except that a DAG's first scheduled run is its
*next* slot, never the slot it missed before it was unpaused.

With ``catchup=False`` Airflow creates the latest missed slot's run as soon as a DAG is unpaused: unpausing
``retrain_classifier`` on the 1st trains at once and starts the retraining cool-down, unpausing the daily
DAGs runs them at whatever hour the user clicked. Here a DAG that never ran on its schedule waits for its
next slot; once it has run, a scheduler outage is caught up as usual (the latest missed slot only).
Registered with Airflow by ``plugins/rakuten_timetables.py`` (custom timetables must be).
"""

from __future__ import annotations

from airflow.sdk.timezone import coerce_datetime, utcnow
from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction
from airflow.timetables.trigger import CronTriggerTimetable


class NextSlotCronTimetable(CronTriggerTimetable):
    """``CronTriggerTimetable`` whose first automated run is the next slot after now (see the module doc)."""

    def _first_slot(self, restriction: TimeRestriction):  # noqa: ANN202 - pendulum DateTime
        first = self._align_to_next(coerce_datetime(utcnow()))
        if restriction.earliest is not None:
            first = max(first, self._align_to_next(restriction.earliest))
        return None if restriction.latest is not None and restriction.latest < first else first

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction) -> DagRunInfo | None:
        if last_automated_data_interval is not None or restriction.catchup:
            return super().next_dagrun_info(last_automated_data_interval=last_automated_data_interval, restriction=restriction)
        first = self._first_slot(restriction)
        return None if first is None else DagRunInfo.interval(coerce_datetime(first - self._interval), first)
