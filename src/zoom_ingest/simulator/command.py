"""The simulator's one command line: serve it, print shell lines that point zoom-ingest at it.

`zoom-ingest simulate` and `python -m zoom_ingest.simulator` both run `simulate`
below; its defaults are the `Simulator` class's own, read from its signature, so the
command and the class cannot disagree. The printed lines are ``export NAME=value``,
shell-quoted, ready to paste or ``eval``.
"""

from __future__ import annotations

import inspect
import shlex
import sys
import time
from typing import Any, TextIO

import click

from .server import Simulator

#: The Simulator's own defaults, by parameter name.
DEFAULTS: dict[str, Any] = {
    name: parameter.default
    for name, parameter in inspect.signature(Simulator).parameters.items()
    if parameter.default is not inspect.Parameter.empty
}


def env_lines(sim: Simulator) -> list[str]:
    """Shell lines that point zoom-ingest at a running simulator."""
    settings = {
        "ZOOM_API_URL": sim.api_url,
        "ZOOM_OAUTH_URL": sim.oauth_url,
        "ZOOM_ACCOUNT_ID": sim.account_id,
        "ZOOM_CLIENT_ID": sim.client_id,
        # A simulator-only fake; printing it is the point.
        "ZOOM_CLIENT_SECRET": sim.client_secret,
    }
    return [f"export {name}={shlex.quote(value)}" for name, value in settings.items()]


def serve(sim: Simulator, *, out: TextIO | None = None) -> None:
    """Run `sim` in the foreground: print its env lines, block until Ctrl-C, stop it."""
    out = out or sys.stdout
    started_here = not sim.running
    if started_here:
        sim.start()
    try:
        for line in env_lines(sim):
            print(line, file=out)
        print("# Zoom API simulator running; Ctrl-C stops it.", file=out, flush=True)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        if started_here:
            sim.stop()


@click.command(
    "simulate", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.option(
    "--port",
    default=DEFAULTS["port"],
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port on 127.0.0.1 (0: a free one).",
)
@click.option("--seed", default=DEFAULTS["seed"], show_default=True, type=int, help="Data seed.")
@click.option(
    "--days",
    default=DEFAULTS["days"],
    show_default=True,
    type=click.FloatRange(0, 185, min_open=True),
    help="Days of history up to now.",
)
@click.option(
    "--activity-per-day",
    default=DEFAULTS["activity_per_day"],
    show_default=True,
    type=click.FloatRange(0),
    help="Sign-in/sign-out records a day, on average.",
)
@click.option(
    "--operation-per-day",
    default=DEFAULTS["operation_per_day"],
    show_default=True,
    type=click.FloatRange(0),
    help="Operation-log records a day, on average.",
)
@click.option(
    "--qps-limit",
    default=DEFAULTS["qps_limit"],
    type=click.FloatRange(0, min_open=True),
    help="Requests/s before 429s (default: no limit).",
)
@click.option(
    "--latency",
    default=DEFAULTS["latency"],
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds added to every API call.",
)
def simulate(**options: Any) -> None:
    """Start the Zoom API simulator on 127.0.0.1 and print how to point the job at it."""
    serve(Simulator(**options))
