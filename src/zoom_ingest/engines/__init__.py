"""Storage engines: `local` (delta-rs in a folder) and `spark` (Spark + Delta, Databricks)."""

from .base import Engine, EngineBusy

__all__ = ["Engine", "EngineBusy"]
