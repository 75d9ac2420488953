"""zoom-ingest's side of its embedded Zoom simulator: the env vars, export lines, settings
and `zoom-ingest simulate` command that point zoom-ingest at a running simulator.

Made from what the simulator exposes (`Simulator.connection()`: its URLs and the app
credentials it accepts, as plain strings) and the option table's names for them; the
simulator itself imports nothing of zoom-ingest.
"""

from __future__ import annotations

from .options import BY_NAME
from .setting_values import Secret
from .simulator import Simulator
from .simulator.command import shell_exports, simulate_command


def environment(sim: Simulator) -> dict[str, str]:
    """The env vars (options.py names them) that point `zoom-ingest run` at `sim`. Its
    client secret is a simulator-only fake: passing it on is the point."""
    return {str(BY_NAME[name].env): value for name, value in sim.connection().items()}


def env_lines(sim: Simulator) -> list[str]:
    """Shell lines (``export NAME=value``, shell-quoted) that point zoom-ingest at `sim`."""
    return shell_exports(environment(sim))


def setting_values(sim: Simulator) -> dict[str, object]:
    """The Settings fields that point a run at `sim`: its URLs and credentials."""
    values: dict[str, object] = dict(sim.connection())
    values["client_secret"] = Secret(sim.client_secret)
    return values


#: `zoom-ingest simulate`: serve a simulator, print `env_lines`.
simulate = simulate_command(env_lines)
