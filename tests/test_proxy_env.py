"""The client honours the environment's proxy variables and NO_PROXY, read once when it
is made (its session no longer reads the environment on every call)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest
import requests
from requests.adapters import HTTPAdapter

from support import loopback
from zoom_ingest.job import zoom_client_config
from zoom_ingest.settings import Secret, Settings
from zoom_ingest.zoom import CallCounters
from zoom_ingest.zoom.client import ZoomClient
from zoom_ingest.zoom.errors import ZoomUnreachable
from zoom_ingest.zoom.ratelimit import RateLimiter
from zoom_ingest.zoom.transport import EnvironmentAdapter

SECRET = "proxy-test-secret-9f3a"


class _Proxy(BaseHTTPRequestHandler):
    """A stand-in forward proxy: records the absolute request line and answers itself."""

    seen: ClassVar[list[str]] = []

    def _answer(self, payload: dict[str, object]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        _Proxy.seen.append(f"POST {self.path}")
        self._answer({"access_token": "proxied-token", "expires_in": 3600})

    def do_GET(self) -> None:
        _Proxy.seen.append(f"GET {self.path}")
        self._answer({"activity_logs": []})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[str]:
    _Proxy.seen = []
    with loopback.serve(_Proxy) as url:
        yield url


def _closed_port() -> int:
    """A loopback port nothing listens on: reaching it directly is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _settings(port: int) -> Settings:
    return Settings(
        account_id="acct-proxy",
        client_id="client-proxy",
        client_secret=Secret(SECRET),
        api_url=f"http://127.0.0.1:{port}/v2",
        oauth_url=f"http://127.0.0.1:{port}/oauth/token",
        max_retries=0,
        timeout=5,
    )


def _clear_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_http_proxy_from_the_environment_carries_token_and_api_calls(
    proxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clear_proxy_environment(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    port = _closed_port()
    client = ZoomClient(
        zoom_client_config(_settings(port)), limiter=RateLimiter(1000), backoff_base=0.01
    )
    # Read once: changing the environment afterwards no longer matters.
    monkeypatch.delenv("HTTP_PROXY")
    try:
        assert client._session.trust_env is False
        body = client.get("/report/activities", {"page_size": 300}, CallCounters())
    finally:
        client.close()
    assert body == {"activity_logs": []}
    assert _Proxy.seen == [
        f"POST http://127.0.0.1:{port}/oauth/token",
        f"GET http://127.0.0.1:{port}/v2/report/activities?page_size=300",
    ]


def test_no_proxy_excludes_a_host(proxy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_proxy_environment(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    port = _closed_port()
    client = ZoomClient(
        zoom_client_config(_settings(port)), limiter=RateLimiter(1000), backoff_base=0.01
    )
    try:
        # Sent directly to the closed port, not through the proxy.
        with pytest.raises(ZoomUnreachable, match="connection refused"):
            client.connect()
    finally:
        client.close()
    assert _Proxy.seen == []


def test_proxies_are_resolved_per_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_proxy_environment(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("NO_PROXY", "zoom.test")
    adapter = EnvironmentAdapter(
        ("https://api.example.test/v2", "https://zoom.test/oauth/token"),
        pool_connections=1,
        pool_maxsize=1,
    )
    assert adapter.proxies_for("https://api.example.test/v2/x")["https"] == (
        "http://127.0.0.1:3128"
    )
    assert adapter.proxies_for("https://zoom.test/oauth/token") == {}


def test_the_ca_bundle_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.setenv("CURL_CA_BUNDLE", "/tmp/curl-bundle.pem")
    adapter = EnvironmentAdapter(("https://zoom.test/",), pool_connections=1, pool_maxsize=1)
    assert adapter.ca_bundle == "/tmp/curl-bundle.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/tmp/requests-bundle.pem")
    adapter = EnvironmentAdapter(("https://zoom.test/",), pool_connections=1, pool_maxsize=1)
    assert adapter.ca_bundle == "/tmp/requests-bundle.pem"


def set_ca_bundle(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """REQUESTS_CA_BUNDLE naming a file, a folder, or unset ("none"); CURL_CA_BUNDLE unset."""
    bundle = tmp_path / "bundle.pem"
    if kind == "file":
        bundle.write_text("")
    elif kind == "folder":
        bundle.mkdir()
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    if kind == "none":
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    else:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))


@pytest.mark.parametrize("bundle_kind", ["file", "folder", "none"])
def test_pool_keys_are_requests_own(
    bundle_kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection pool key (which CAs a TLS connection trusts) is what requests
    itself builds, though the bundle is looked at once, not on every call."""
    set_ca_bundle(bundle_kind, tmp_path, monkeypatch)
    adapter = EnvironmentAdapter(("https://zoom.test/",), pool_connections=1, pool_maxsize=1)
    verify: bool | str = adapter.ca_bundle or True
    request = requests.Request("GET", "https://zoom.test/v2/x").prepare()
    expected = HTTPAdapter().build_connection_pool_key_attributes(request, verify, None)
    stats: list[str] = []
    real_isdir = os.path.isdir
    monkeypatch.setattr(os.path, "isdir", lambda path: stats.append(path) or real_isdir(path))
    assert adapter.build_connection_pool_key_attributes(request, verify, None) == expected
    assert stats == []
    other = HTTPAdapter().build_connection_pool_key_attributes(request, str(tmp_path), None)
    assert adapter.build_connection_pool_key_attributes(request, str(tmp_path), None) == other


@pytest.mark.parametrize("bundle_kind", ["file", "folder", "none"])
@pytest.mark.parametrize("url", ["https://zoom.test/v2/x", "http://127.0.0.1:9/v2/x"])
def test_connection_tls_settings_are_requests_own(
    bundle_kind: str, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_ca_bundle(bundle_kind, tmp_path, monkeypatch)
    adapter = EnvironmentAdapter((url,), pool_connections=1, pool_maxsize=1)
    verify: bool | str = adapter.ca_bundle or True

    def settings(chosen: HTTPAdapter) -> dict[str, object]:
        conn = HTTPAdapter().poolmanager.connection_from_url(url)
        chosen.cert_verify(conn, url, verify, None)
        return {k: getattr(conn, k, None) for k in ("cert_reqs", "ca_certs", "ca_cert_dir")}

    expected = settings(HTTPAdapter())
    stats: list[str] = []
    real_isdir, real_exists = os.path.isdir, os.path.exists
    monkeypatch.setattr(os.path, "isdir", lambda path: stats.append(path) or real_isdir(path))
    monkeypatch.setattr(os.path, "exists", lambda path: stats.append(path) or real_exists(path))
    assert settings(adapter) == expected
    assert stats == []
