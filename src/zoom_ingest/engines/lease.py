"""A Zoom account's lease: one run at a time calls Zoom for an account, across jobs,
processes and both engines.

Every process has its own rate limiter, so two runs on one account (the hourly run and
the reconcile, two `for_each` tasks, a notebook) would together exceed the account's
rate and daily quota. Before it makes a Zoom client, a run takes the account's row of
`zoom_ingest_leases` (`Engine.write_lease`: one conditional MERGE that Delta's
optimistic concurrency lets only one writer win), renews it from a heartbeat thread
every `rules.RENEW_SECONDS` while it runs, and releases it at the end. A run killed
without releasing it blocks the account until the lease expires
(`rules.LEASE_SECONDS`); the next run then takes it over.

A run that finds the lease held waits up to its `lease_wait`, then gives up with
`AccountBusy` (exit 4). Expiry compares instants written by different hosts' clocks:
a few seconds of clock skew only shorten or lengthen a five-minute lease a little.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from ..tables import UTC, format_time, lease_row
from . import rules
from .base import AccountBusy, Engine, LeaseHolder

log = logging.getLogger("zoom_ingest.lease")

#: How often a run waiting for a lease tries again.
POLL_SECONDS = 5.0


class AccountLease:
    """One run's lease on one Zoom account, written through an engine."""

    def __init__(
        self,
        engine: Engine,
        account_id: str,
        run_id: str,
        *,
        seconds: float = rules.LEASE_SECONDS,
        renew_every: float = rules.RENEW_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not 0 < renew_every < seconds:
            raise ValueError("a lease must be renewed well within its duration")
        self.engine = engine
        self.account_id = account_id
        self.run_id = run_id
        self.seconds = seconds
        self.renew_every = renew_every
        self.clock = clock
        self.acquired_at: datetime | None = None
        #: Until when this run holds the lease, as last written (None: not held).
        self.expires_at: datetime | None = None

    def try_acquire(self) -> LeaseHolder | None:
        """Take the lease if it is free; None when taken, else the run holding it."""
        now = self.clock()
        holders = self._write(now, now + timedelta(seconds=self.seconds), acquired_at=now)
        other = self._other_holder(holders, now)
        if other is None:
            self.acquired_at = now
            self.expires_at = now + timedelta(seconds=self.seconds)
        return other

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lease, trying again every `POLL_SECONDS` for up to `wait` seconds
        while another run holds it; AccountBusy names that run when it still does."""
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            other = self.try_acquire()
            if other is None:
                log.info(
                    "took the lease on Zoom account %s until %s",
                    self.account_id,
                    format_time(self.expires_at or self.clock()),
                )
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise AccountBusy(self.busy_message(other))
            log.info("%s; waiting (up to %.0f s more)", self.busy_message(other), left)
            time.sleep(min(POLL_SECONDS, left))

    def renew(self) -> bool:
        """Extend the lease; False when another run holds it now (ours had expired)."""
        now = self.clock()
        expires = now + timedelta(seconds=self.seconds)
        holders = self._write(now, expires, acquired_at=self.acquired_at or now)
        if self._other_holder(holders, now) is not None:
            self.expires_at = None
            return False
        self.expires_at = expires
        return True

    def release(self) -> None:
        """Free the lease now (expires_at = now), if this run still holds it."""
        if self.expires_at is None:
            return
        now = self.clock()
        self._write(now, now, acquired_at=self.acquired_at or now)
        self.expires_at = None
        log.info("released the lease on Zoom account %s", self.account_id)

    def busy_message(self, other: LeaseHolder) -> str:
        return (
            f"Zoom account {self.account_id} is in use by run {other.run_id} (its lease in "
            f"zoom_ingest_leases, {self.engine.describe()}, runs until "
            f"{format_time(other.expires_at)} unless renewed); nothing was fetched"
        )

    def _write(
        self, now: datetime, expires: datetime, *, acquired_at: datetime
    ) -> list[LeaseHolder]:
        row = lease_row(self.account_id, self.run_id, acquired_at, now, expires)
        return self.engine.write_lease(row)

    def _other_holder(self, holders: list[LeaseHolder], now: datetime) -> LeaseHolder | None:
        """The run other than this one that holds the lease at `now`, if any.

        Normally there is one row per account. Two rows (two first writers whose inserts
        both committed) are held by whoever holds every unexpired one: until they expire,
        neither run has it, never both."""
        others = [h for h in holders if h.run_id != self.run_id and h.expires_at > now]
        if others:
            return max(others, key=lambda h: h.expires_at)
        if not any(h.run_id == self.run_id for h in holders):
            # The MERGE did not leave our row: only a race we cannot see explains it.
            return LeaseHolder("(unknown)", now)
        return None


def free_leases_of_gone_runs(engine: Engine, account_id: str, run_ids: set[str]) -> None:
    """Release, in their names, the leases of runs known to have ended without releasing
    theirs (killed: a later run under the same exclusive run lock found their rows still
    `running`). The MERGE lets a run's own row be written, so this frees only a lease
    those runs still hold, never one another run has taken since."""
    for run_id in sorted(run_ids):
        gone = AccountLease(engine, account_id, run_id)
        gone.expires_at = gone.clock()  # as if held: release() writes expires_at = now
        gone.release()


@contextmanager
def account_lease(
    engine: Engine,
    account_id: str,
    run_id: str,
    *,
    wait: float = 0.0,
    on_lost: Callable[[str], None] | None = None,
    seconds: float = rules.LEASE_SECONDS,
    renew_every: float = rules.RENEW_SECONDS,
) -> Iterator[AccountLease]:
    """Hold the account's lease for the body: acquired (AccountBusy when another run
    keeps it beyond `wait` seconds), renewed by a heartbeat thread, released at the end.

    When a renewal finds the lease taken by another run (this one was paused past its
    expiry), `on_lost` is called with why, once; the body should stop calling Zoom.
    """
    lease = AccountLease(engine, account_id, run_id, seconds=seconds, renew_every=renew_every)
    lease.acquire(wait)
    stop = threading.Event()
    heartbeat = threading.Thread(
        target=_heartbeat, args=(lease, stop, on_lost), name="zoom-lease", daemon=True
    )
    heartbeat.start()
    try:
        yield lease
    finally:
        stop.set()
        heartbeat.join()
        try:
            lease.release()
        except Exception as exc:  # it expires on its own
            log.warning(
                "could not release the lease on Zoom account %s (%s); it expires at %s",
                account_id,
                exc,
                format_time(lease.expires_at) if lease.expires_at else "once expired",
            )


def _heartbeat(
    lease: AccountLease, stop: threading.Event, on_lost: Callable[[str], None] | None
) -> None:
    """Renew every `renew_every` seconds until `stop`; a failed renewal is tried again at
    the next beat, as long as the lease has not expired meanwhile."""
    while not stop.wait(lease.renew_every):
        try:
            if lease.renew():
                continue
            why = f"the lease on Zoom account {lease.account_id} was taken by another run"
        except Exception as exc:
            expires = lease.expires_at
            if expires is not None and lease.clock() < expires:
                log.warning("could not renew the lease (%s); trying again", exc)
                continue
            why = f"the lease on Zoom account {lease.account_id} expired unrenewed ({exc})"
        log.error("%s: stopping the run", why)
        if on_lost is not None:
            on_lost(why)
        return
