"""The simulator's command line: serve one in the foreground and print how to reach it.

`simulate_command(lines_of)` makes the command; its options' defaults are the
`Simulator` class's own, read from its signature, so the command and the class cannot
disagree. What it prints is `lines_of(sim)`: shell lines ``export NAME=value``,
shell-quoted, ready to paste or ``eval``. The simulator knows its URLs and credentials
(`Simulator.connection()`), not the names a client reads them under: `zoom-ingest
simulate` (zoom_ingest/simulated.py) prints zoom-ingest's env vars from its option table;
`python -m zoom_ingest.simulator` stands alone and prints `export_lines`, the same names
by the usual ``ZOOM_`` convention (tests/test_options.py holds the two to each other).
"""

from __future__ import annotations

import inspect
import shlex
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import click

from .server import Simulator

#: The Simulator's own defaults, by parameter name.
DEFAULTS: dict[str, Any] = {
    name: parameter.default
    for name, parameter in inspect.signature(Simulator).parameters.items()
    if parameter.default is not inspect.Parameter.empty
}


#: What a command prints about a running simulator: shell lines that point a client at it.
LinesOf = Callable[[Simulator], list[str]]


def shell_exports(environment: dict[str, str]) -> list[str]:
    """``export NAME=value`` lines, each value shell-quoted."""
    return [f"export {name}={shlex.quote(value)}" for name, value in environment.items()]


def export_lines(sim: Simulator) -> list[str]:
    """The simulator's `connection()` as ``export ZOOM_<NAME>=value`` lines (ZOOM_API_URL,
    ZOOM_ACCOUNT_ID, …): the usual environment of a Zoom app's client."""
    return shell_exports({f"ZOOM_{name.upper()}": v for name, v in sim.connection().items()})


def serve(sim: Simulator, lines_of: LinesOf, *, out: TextIO | None = None) -> None:
    """Run `sim` in the foreground: print `lines_of(sim)`, block until Ctrl-C, stop it."""
    out = out or sys.stdout
    started_here = not sim.running
    if started_here:
        sim.start()
    try:
        for line in lines_of(sim):
            print(line, file=out)
        print("# Zoom API simulator running; Ctrl-C stops it.", file=out, flush=True)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        if started_here:
            sim.stop()


#: The command's options: the Simulator parameter each sets, its type and help. The
#: default is the Simulator's own.
OPTIONS: tuple[tuple[str, click.ParamType, str], ...] = (
    ("port", click.IntRange(0, 65535), "Port on 127.0.0.1 (0: a free one)."),
    ("seed", click.INT, "Data seed."),
    ("days", click.FloatRange(0, 185, min_open=True), "Days of history up to now."),
    ("activity_per_day", click.FloatRange(0), "Sign-in/sign-out records a day, on average."),
    ("operation_per_day", click.FloatRange(0), "Operation-log records a day, on average."),
    ("qps_limit", click.FloatRange(0, min_open=True), "Requests/s before 429s (default: none)."),
    ("latency", click.FloatRange(0), "Seconds added to every API call."),
    (
        "day_spread",
        click.FloatRange(0, 3),
        "Uneven days: 0 every day alike; e.g. 0.5 for quiet weekends and a seeded spread.",
    ),
)


def _with_options(command: Callable[..., None]) -> Callable[..., None]:
    for name, kind, help_text in reversed(OPTIONS):
        default = DEFAULTS[name]
        option = click.option(
            "--" + name.replace("_", "-"),
            default=default,
            show_default=default is not None,
            type=kind,
            help=help_text,
        )
        command = option(command)
    return command


def simulate_command(lines_of: LinesOf) -> click.Command:
    """The `simulate` command: serve a Simulator made from its options, printing
    `lines_of(sim)` once it runs."""

    @click.command(
        "simulate",
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )
    @_with_options
    def simulate(**options: Any) -> None:
        """Start the Zoom API simulator on 127.0.0.1 and print how to point the job at it."""
        serve(Simulator(**options), lines_of)

    return simulate
