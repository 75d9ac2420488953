"""Storage engines: `local` (delta-rs in a folder) and `spark` (Spark + Delta, Databricks)."""

from typing import Any

from .base import AccountBusy, Engine, EngineBusy, TableSchemaMismatch, UnsupportedTable

__all__ = [
    "AccountBusy",
    "Engine",
    "EngineBusy",
    "LocalEngine",
    "SparkEngine",
    "TableSchemaMismatch",
    "UnsupportedTable",
]


def __getattr__(name: str) -> Any:
    # Each engine is imported on first use: LocalEngine needs deltalake (the `local`
    # extra, absent on Databricks) and SparkEngine is only wanted with Spark, so that
    # `zoom_ingest.engines` imports with neither.
    if name == "LocalEngine":
        from .local import LocalEngine

        return LocalEngine
    if name == "SparkEngine":
        from .spark import SparkEngine

        return SparkEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
