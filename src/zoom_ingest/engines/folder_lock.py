"""The lock both engines take on a warehouse folder, so one run at a time writes it.

A local run and a Spark run on the same folder (or two processes of either) exclude
each other through the same lock file; it needs neither deltalake nor pyspark.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .base import EngineBusy

LOCK_FILE_NAME = ".zoom_ingest.lock"


@contextmanager
def warehouse_lock(warehouse: Path) -> Iterator[None]:
    """An exclusive, non-blocking `flock` on `<warehouse>/.zoom_ingest.lock`.

    flock belongs to the open file, so the kernel releases it when the holder exits
    or dies: a crashed run never leaves a stale lock. A second run (another process,
    or another engine object in this one, of either engine) raises EngineBusy naming the
    holder's pid.
    """
    warehouse.mkdir(parents=True, exist_ok=True)
    path = warehouse / LOCK_FILE_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder_pid(fd)
            raise EngineBusy(
                f"another zoom_ingest run holds the warehouse {warehouse} "
                f"(lock file {path}, held by pid {holder or 'unknown'}); "
                "wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # a pid left behind would name a run that has ended
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_holder_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode("ascii").strip())
    except (OSError, ValueError):
        return None  # the holder has the lock but has not written its pid yet
