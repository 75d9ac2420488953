"""A command that runs until stopped (the simulator in the foreground), in a process.

    with foreground([sys.executable, "-m", "zoom_ingest.simulator"], env) as process:
        line = process.stdout.readline()
        ...
        process.send_signal(signal.SIGINT)

Whatever the test does, the process does not outlive the `with`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager


@contextmanager
def foreground(args: Sequence[str], env: Mapping[str, str]) -> Iterator[subprocess.Popen[str]]:
    """The running process, its stdout a text pipe; killed at the end if still running."""
    process = subprocess.Popen(list(args), stdout=subprocess.PIPE, text=True, env=dict(env))
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
