"""Fail fast when Zoom cannot be reached: one token request up front, a few bounded
attempts, then one line naming the URL and the cause, and exit code 5.

Before, with the network down, every window of both streams retried on its own (88
retries over 184 windows per stream, 187 s) and ended with a bare `ConnectionError`.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from support.sim_settings import simulator_settings
from zoom_ingest import exit_codes
from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.job import run, zoom_client_config
from zoom_ingest.settings import Secret, Settings
from zoom_ingest.simulator import Simulator
from zoom_ingest.tables import RUNS
from zoom_ingest.zoom import ZoomClient
from zoom_ingest.zoom.client import CONNECT_ATTEMPTS

SECRET = "unreachable-test-secret"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_at(api_url: str, oauth_url: str) -> Settings:
    return Settings(
        account_id="acct",
        client_id="cid",
        client_secret=Secret(SECRET),
        api_url=api_url,
        oauth_url=oauth_url,
        timeout=2,
    )


def run_with_counted_client(settings: Settings, warehouse: Path):
    with ZoomClient(zoom_client_config(settings), backoff_base=0.01, backoff_max=0.05) as client:
        summary = run(settings, LocalEngine(warehouse), progress=False, client=client)
        return summary, client.tokens.requests_made


def test_a_refused_connection_ends_the_run_after_a_few_attempts_with_one_line(tmp_path):
    base = f"http://127.0.0.1:{closed_port()}"
    settings = settings_at(f"{base}/v2", f"{base}/oauth/token")
    summary, attempts = run_with_counted_client(settings, tmp_path)

    assert summary.exit_code == exit_codes.ZOOM_UNREACHABLE
    assert attempts == CONNECT_ATTEMPTS  # not once per window, not max_retries
    assert all(s.counters.api_calls == 0 for s in summary.streams)  # no window started
    lines = summary.lines()
    said = [line for line in lines if "cannot reach" in line]
    assert len(said) == 1, lines  # said once, not once per stream
    assert said[0].strip().startswith(f"cannot reach {base}/oauth/token: connection refused")
    assert all(SECRET not in line for line in lines)
    # The runs table says so too, for both streams.
    rows = LocalEngine(tmp_path).read_table(RUNS).to_pylist()
    assert {r["status"] for r in rows} == {"failed"} and len(rows) == 2
    assert all("connection refused" in r["error"] for r in rows)


def test_a_name_that_does_not_resolve_is_named_as_such(tmp_path, monkeypatch):
    def no_such_name(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    # No lookup leaves this machine: the resolver itself answers that the name is unknown.
    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    settings = settings_at("https://api.zoom.invalid/v2", "https://zoom.invalid/oauth/token")
    summary, attempts = run_with_counted_client(settings, tmp_path)

    assert summary.exit_code == exit_codes.ZOOM_UNREACHABLE
    assert attempts == CONNECT_ATTEMPTS
    assert (
        "cannot reach https://zoom.invalid/oauth/token: name resolution failed"
        in summary.lines()[1]
    )


def test_a_wrong_secret_still_fails_at_once_as_refused_credentials(tmp_path):
    with Simulator(seed=3, days=2) as sim:
        settings = simulator_settings(sim, client_secret=Secret("not-the-secret"))
        summary, attempts = run_with_counted_client(settings, tmp_path)
    assert summary.exit_code == exit_codes.STREAM_FAILED
    assert attempts == 1  # refused credentials are final: no retry
    assert all("Zoom refused to issue an access token" in (s.error or "") for s in summary.streams)
    assert sim.stats.calls == 0


@pytest.mark.parametrize("kind", ["http_503"])
def test_a_token_endpoint_that_answers_5xx_is_retried_as_usual_once_per_run(tmp_path, kind):
    from zoom_ingest.simulator import Fault

    with Simulator(seed=3, days=20) as sim:
        sim.faults.inject(Fault(kind, count=None, path="/oauth/token"))
        settings = simulator_settings(sim, max_retries=2, backfill_start=None)
        summary, attempts = run_with_counted_client(settings, tmp_path)
    assert summary.exit_code == exit_codes.STREAM_FAILED
    # Once for the run: 184 day windows per stream used to ask (and fail) each on their own.
    assert attempts == settings.max_retries + 1
    assert all("token request failed" in (s.error or "") for s in summary.streams)
