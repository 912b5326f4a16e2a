"""Registers the platform's timetable with Airflow (the scheduler, dag-processor and api-server load plugins)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from rakuten_ml.timetables import NextSlotCronTimetable


class RakutenTimetablesPlugin(AirflowPlugin):
    name = "rakuten_timetables"
    timetables = [NextSlotCronTimetable]
