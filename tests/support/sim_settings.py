"""Settings for a run against a simulator: its URLs and credentials, plus the test's
changes (the simulator knows nothing of Settings; zoom_ingest.simulated reads it).

    settings = simulator_settings(sim, backfill_start=start, requests_per_second=500)
"""

from __future__ import annotations

from typing import Any

from zoom_ingest.settings import Settings
from zoom_ingest.simulated import setting_values
from zoom_ingest.simulator import Simulator


def simulator_settings(sim: Simulator, **changes: Any) -> Settings:
    """Settings that point the job at `sim`, with `changes` applied on top."""
    return Settings(**setting_values(sim)).with_changes(**changes)  # type: ignore[arg-type]
