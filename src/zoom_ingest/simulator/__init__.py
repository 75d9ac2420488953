"""A faithful local Zoom API: real HTTP on 127.0.0.1 for the demo, tests and benchmarks.

    from zoom_ingest.simulator import Simulator, Fault
    with Simulator(seed=7, days=30) as sim:
        sim.connection()  # api_url, oauth_url, account_id, client_id, client_secret
        sim.ground_truth("activity_logs")
        sim.faults.inject(Fault("http_503", count=2))

`python -m zoom_ingest.simulator` (the same command as `zoom-ingest simulate`) runs one in
the foreground. The package imports nothing of zoom_ingest but Zoom's rules.
"""

from .command import export_lines, serve, shell_exports, simulate_command
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
    "export_lines",
    "serve",
    "shell_exports",
    "simulate_command",
]
