"""Storage engines: `local` (delta-rs in a folder) and `spark` (Spark + Delta, Databricks)."""

from typing import Any

from .base import Engine, EngineBusy, TableSchemaMismatch, UnsupportedTable

__all__ = ["Engine", "EngineBusy", "LocalEngine", "TableSchemaMismatch", "UnsupportedTable"]


def __getattr__(name: str) -> Any:
    # LocalEngine needs deltalake, the `local` extra: importing it on first use keeps
    # `zoom_ingest.engines.base` / `.spark` importable on Databricks, where it is absent.
    if name == "LocalEngine":
        from .local import LocalEngine

        return LocalEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
