"""Engines that run compiled SQL: DuckDB (embedded) and Spark."""
