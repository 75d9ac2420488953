"""Storage engines: `local` (delta-rs in a folder) and `spark` (Spark + Delta, Databricks)."""

from .base import Engine, EngineBusy, TableSchemaMismatch, UnsupportedTable
from .local import LocalEngine

__all__ = ["Engine", "EngineBusy", "LocalEngine", "TableSchemaMismatch", "UnsupportedTable"]
