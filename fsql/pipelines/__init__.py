"""Pipelines: Airflow DAG generation, run tracking and monitoring."""
