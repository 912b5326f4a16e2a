"""The service layer: one function per DAG task, called by the DAGs and by the CLI.

A job takes a :class:`~rakuten_ml.jobs.context.JobContext` (run id, params, the day the run stands
for, triggering asset events) and plain values, builds what it needs from :class:`Settings`, and
returns JSON-able values. It knows nothing of Airflow: it raises :class:`JobSkipped` or
:class:`JobFailed`, and returns :class:`WithEvents` to emit asset events; ``orchestration.run_job``
turns those into Airflow's exceptions and outlet events.
"""
