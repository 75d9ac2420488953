"""The soak's `zoom-ingest run` processes: the command, its environment, and a runner
that starts each one against the simulator and keeps what it printed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from zoom_ingest.simulated import environment
from zoom_ingest.simulator import Simulator

#: Simulator-only credentials that are easy to spot wherever they might leak.
FAKE_SECRET = "FAKE-zoom-secret-SOAK-do-not-log-4c1d9e"
EXIT_OK, EXIT_FAILED, EXIT_SETTINGS, EXIT_DAILY_LIMIT, EXIT_BUSY = 0, 1, 2, 3, 4
#: Zoom's answer for a window could not be proven complete (e.g. a looping API).
EXIT_INCOMPLETE = 7
KILLED = -signal.SIGKILL
#: A run that takes longer than this is a hang, not a slow run.
RUN_TIMEOUT = 600.0


# --------------------------------------------------------------------------- the command


def zoom_ingest_command() -> list[str]:
    """The installed `zoom-ingest` script of this interpreter's environment, or the module."""
    script = Path(sys.executable).with_name("zoom-ingest")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "zoom_ingest.cli"]


def cli_env(sim: Simulator, **overrides: str) -> dict[str, str]:
    """This process's environment without ZOOM_* settings, pointed at `sim`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ZOOM_")}
    return {**base, **environment(sim), **overrides}


def run_args(warehouse: Path, backfill_start: date, *extra: str) -> list[str]:
    """`zoom-ingest run` with the options every soak run shares, then `extra`."""
    return [
        *zoom_ingest_command(),
        "run",
        "--warehouse",
        str(warehouse),
        "--backfill-start",
        backfill_start.isoformat(),
        "--no-progress",
        "--log-level",
        "DEBUG",
        *extra,
    ]


@dataclass
class Attempt:
    """One `zoom-ingest` process: how it ended and what it printed."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    calls: int  # API calls the simulator answered while it ran

    @property
    def killed(self) -> bool:
        return self.returncode == KILLED

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def error_line(self) -> str:
        """The first line that says why the run did not finish."""
        for line in self.output.splitlines():
            text = line.strip()
            if text.startswith("error") or "daily rate limit" in text:
                return text
        return ""

    def summary_rejected(self) -> int:
        """The rejects the printed run summary counts, over both streams."""
        return sum(int(m.replace(",", "")) for m in re.findall(r"rejected ([\d,]+)", self.stdout))


class Runner:
    """Starts `zoom-ingest` processes against one simulator and keeps what they printed."""

    def __init__(self, sim: Simulator, logs: Path) -> None:
        self.sim = sim
        self.logs = logs
        self.attempts: list[Attempt] = []
        self._count = 0

    def start(
        self, args: Sequence[str], env: dict[str, str]
    ) -> tuple[subprocess.Popen[bytes], Path]:
        self._count += 1
        out = self.logs / f"run-{self._count:03d}"
        with (
            out.with_suffix(".out").open("wb") as stdout,
            out.with_suffix(".err").open("wb") as stderr,
        ):  # the child writes to its own copies of these
            proc = subprocess.Popen(
                list(args), env=env, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL
            )
        return proc, out

    def collect(
        self, proc: subprocess.Popen[bytes], out: Path, started: float, calls: int
    ) -> Attempt:
        attempt = Attempt(
            returncode=proc.returncode,
            stdout=out.with_suffix(".out").read_text("utf-8", "replace"),
            stderr=out.with_suffix(".err").read_text("utf-8", "replace"),
            seconds=time.monotonic() - started,
            calls=self.sim.stats.calls - calls,
        )
        self.attempts.append(attempt)
        return attempt

    def run(self, args: Sequence[str], env: dict[str, str]) -> Attempt:
        """Run to the end."""
        calls, started = self.sim.stats.calls, time.monotonic()
        proc, out = self.start(args, env)
        try:
            proc.wait(timeout=RUN_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return self.collect(proc, out, started, calls)

    def run_and_kill(
        self, args: Sequence[str], env: dict[str, str], after_calls: int, plus_seconds: float
    ) -> Attempt:
        """Run until the simulator has answered `after_calls` of its API calls, wait
        `plus_seconds` more, then SIGKILL it (unless it has finished by then)."""
        calls, started = self.sim.stats.calls, time.monotonic()
        proc, out = self.start(args, env)
        triggered: float | None = None
        try:
            while proc.poll() is None:
                now = time.monotonic()
                if triggered is None and self.sim.stats.calls - calls >= after_calls:
                    triggered = now
                if triggered is not None and now - triggered >= plus_seconds:
                    proc.send_signal(signal.SIGKILL)
                    break
                if now - started > RUN_TIMEOUT:
                    raise TimeoutError(f"zoom-ingest ran longer than {RUN_TIMEOUT:.0f} s")
                time.sleep(0.002)
        finally:
            if proc.poll() is None and triggered is None:
                proc.kill()
            proc.wait()
        return self.collect(proc, out, started, calls)
