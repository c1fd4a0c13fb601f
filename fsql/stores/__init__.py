"""Stores: the offline store (Parquet on disk or S3) and online stores (SQLite, Redis)."""
