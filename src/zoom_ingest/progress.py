"""Progress of a run: a rich progress bar in a terminal, periodic plain log lines elsewhere.

A Databricks job's driver log is not a terminal; a bar there would be noise, so the
same events become one log line every `interval` seconds instead.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

log = logging.getLogger("zoom_ingest.progress")


class Progress:
    """Counts windows and records per stream; renders as a bar or as log lines."""

    def __init__(self, totals: dict[str, int], *, bar: bool | None = None, interval: float = 15.0):
        self._totals = dict(totals)
        self._windows = dict.fromkeys(totals, 0)
        self._records = dict.fromkeys(totals, 0)
        self._lock = threading.Lock()
        self._interval = interval
        self._last_log = time.monotonic()
        self._bar = sys.stderr.isatty() if bar is None else bar
        self._rich = None
        self._tasks: dict[str, object] = {}

    def __enter__(self) -> Progress:
        if self._bar:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(
                TextColumn("{task.description:<15}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("windows  {task.fields[records]:>10,} records"),
                TimeElapsedColumn(),
                transient=False,
            )
            self._rich.start()
            for stream, total in self._totals.items():
                self._tasks[stream] = self._rich.add_task(stream, total=total, records=0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()
        else:
            self._log_now()

    def records(self, stream: str, count: int) -> None:
        with self._lock:
            self._records[stream] += count
            self._update(stream)

    def window_done(self, stream: str) -> None:
        with self._lock:
            self._windows[stream] += 1
            self._update(stream)

    def _update(self, stream: str) -> None:
        if self._rich is not None:
            self._rich.update(
                self._tasks[stream],  # type: ignore[arg-type]
                completed=self._windows[stream],
                records=self._records[stream],
            )
        elif time.monotonic() - self._last_log >= self._interval:
            self._log_now()

    def _log_now(self) -> None:
        self._last_log = time.monotonic()
        for stream in self._totals:
            log.info(
                "progress %s: %d/%d windows, %d records",
                stream,
                self._windows[stream],
                self._totals[stream],
                self._records[stream],
            )
