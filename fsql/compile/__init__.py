"""Compilation: resolved features → a logical plan → SQL per engine (DuckDB, Spark)."""
