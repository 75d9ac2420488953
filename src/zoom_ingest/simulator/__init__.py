"""A faithful local Zoom API: real HTTP on 127.0.0.1 for the demo, tests and benchmarks.

    from zoom_ingest.simulator import Simulator, Fault
    with Simulator(seed=7, days=30) as sim:
        sim.api_url, sim.oauth_url, sim.account_id, sim.client_id, sim.client_secret
        sim.ground_truth("activity_logs")
        sim.faults.inject(Fault("http_503", count=2))

`python -m zoom_ingest.simulator` (the same command as `zoom-ingest simulate`) runs one in
the foreground.
"""

from .command import env_lines, serve
from .data import CATEGORY_DISPLAY_NAMES, STREAMS
from .faults import KINDS as FAULT_KINDS
from .faults import Fault, FaultSet
from .ratelimits import Stats
from .server import Simulator

__all__ = [
    "CATEGORY_DISPLAY_NAMES",
    "FAULT_KINDS",
    "STREAMS",
    "Fault",
    "FaultSet",
    "Simulator",
    "Stats",
    "env_lines",
    "serve",
]
