"""The registry: versioned storage of definitions, lineage and the materialization ledger."""
