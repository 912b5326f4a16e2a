"""The platform's whole life cycle under a real Airflow deployment: ``make demo`` and its end-to-end test.

``stack`` starts and stops the services (Airflow's four components, an MLflow server, the serving API),
``airflow_api`` drives Airflow through its REST API as the UI does, ``traffic`` is the bounded loopback
client playing the shop and its human labellers, ``scenario`` is the simulated month, and ``report``
prints its timeline and writes the HTML report.
"""
