"""The baseline: a naive client, the way a first script against the API is often written.

One date window at a time, its pages one after the other with Zoom's default page size
of 30, each window appended to the Delta table as it comes, and duplicates removed at
the end by rewriting the table. It is latency-bound (one request in flight), so its
throughput is steady; it runs for a time budget and its rate stands for the whole backfill.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import requests
from deltalake import DeltaTable, write_deltalake

from zoom_ingest.normalise import Batch
from zoom_ingest.simulator import Simulator
from zoom_ingest.tables import LOG_TABLES
from zoom_ingest.zoom import STREAMS_BY_NAME

from .backfill import warm_up
from .harness import Workload

NAIVE_PAGE_SIZE = 30  # the endpoints' default when page_size is not sent


@dataclass(frozen=True)
class NaiveResult:
    records: int  # records fetched
    rows: int  # rows left after de-duplication
    api_calls: int
    rate_limited: int
    windows: int  # windows fetched completely within the budget
    wall_seconds: float  # fetching, appending and de-duplicating

    @property
    def records_per_second(self) -> float:
        return self.records / self.wall_seconds

    @property
    def calls_per_record(self) -> float:
        return self.api_calls / self.records if self.records else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "records_per_second": self.records_per_second,
            "calls_per_record": self.calls_per_record,
        }


class NaiveClient:
    """Sequential paging with a small page size; append, then de-duplicate."""

    def __init__(self, sim: Simulator, warehouse: Path) -> None:
        self.sim = sim
        self.warehouse = warehouse
        self.session = requests.Session()
        self.api_calls = 0
        self.token = self._token()

    def _token(self) -> str:
        response = self.session.post(
            self.sim.oauth_url,
            auth=(self.sim.client_id, self.sim.client_secret),
            data={"grant_type": "account_credentials", "account_id": self.sim.account_id},
            timeout=30,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def pages(self, stream: str, day: date) -> Iterator[list[Any]]:
        params: dict[str, Any] = {
            "from": day.isoformat(),
            "to": day.isoformat(),
            "page_size": NAIVE_PAGE_SIZE,
        }
        while True:
            report = STREAMS_BY_NAME[stream]
            body = self._get(report.path, params)
            yield body.get(report.records_key) or []
            token = body.get("next_page_token") or ""
            if not token:
                return
            params["next_page_token"] = token

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        while True:
            self.api_calls += 1
            response = self.session.get(
                self.sim.api_url + path,
                params=params,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=30,
            )
            if response.status_code == 429:  # even a naive client waits when told to
                time.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            response.raise_for_status()
            return dict(response.json())

    def append(self, stream: str, records: list[Any]) -> None:
        batch = Batch(LOG_TABLES[stream])
        batch.add(records)
        write_deltalake(str(self.warehouse / stream), batch.to_arrow(), mode="append")

    def deduplicate(self, stream: str) -> int:
        """Rewrite the table keeping the first row of every lw_id; returns the rows kept."""
        path = str(self.warehouse / stream)
        if not DeltaTable.is_deltatable(path):
            return 0
        table = DeltaTable(path).to_pyarrow_table()
        ids = table["lw_id"]
        first = pc.index_in(pc.unique(ids), value_set=ids)
        unique = table.take(first)
        write_deltalake(path, unique, mode="overwrite")
        return unique.num_rows

    def close(self) -> None:
        self.session.close()


def measure_naive(
    workload: Workload, requests_per_second: float, workdir: Path, *, budget_seconds: float
) -> NaiveResult:
    """Run the naive client over the backfill's windows, oldest first, until the budget
    is spent (what was fetched by then is appended), then de-duplicate."""
    warehouse = workdir / f"naive-{requests_per_second:g}rps"
    with workload.simulator(qps_limit=requests_per_second) as sim:
        warm_up(sim)
        windows = _windows(sim)
        started = time.monotonic()
        client = NaiveClient(sim, warehouse)
        records = done = 0
        try:
            for stream, day in windows:
                fetched: list[Any] = []
                spent = False
                for page in client.pages(stream, day):
                    fetched.extend(page)
                    spent = time.monotonic() - started >= budget_seconds
                    if spent:
                        break
                if fetched:
                    client.append(stream, fetched)
                records += len(fetched)
                done += not spent
                if spent:
                    break
            rows = sum(client.deduplicate(stream) for stream in LOG_TABLES)
        finally:
            client.close()
        wall = time.monotonic() - started
        rate_limited = sim.stats.rate_limited
    return NaiveResult(
        records=records,
        rows=rows,
        api_calls=client.api_calls,
        rate_limited=rate_limited,
        windows=done,
        wall_seconds=wall,
    )


def _windows(sim: Simulator) -> list[tuple[str, date]]:
    """One-day windows over the simulated history, oldest first, a stream at a time."""
    first, last = sim.start_time.date(), sim.now.date()
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return [(stream, day) for stream in LOG_TABLES for day in days]
