"""Secrets: the client secret and the access tokens never show, whatever happens.

Runs that succeed and runs that fail (bad credentials, 401s, 500s, an unreachable token
endpoint, the daily limit) are made with recognisable fake credentials. Every log line
of every logger at DEBUG, every exception text and traceback, the run summaries, the
output of `zoom-ingest` processes and every row of every table are searched for the
secret, for each access token the simulator issued, for the Basic-auth header built
from the secret, and for pieces of each. The HTTP client verifies TLS (shown against a
local HTTPS server whose certificate is not trusted, then trusted) and refuses plain
http except to loopback.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import ipaddress
import json
import logging
import os
import ssl
import subprocess
import traceback
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

import pytest

from support import loopback, soak  # soak: the harness's process runner, table scan
from zoom_ingest import exit_codes
from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.job import run, zoom_client_config
from zoom_ingest.settings import Secret, Settings, SettingsError, check_url
from zoom_ingest.simulator import Fault, Simulator
from zoom_ingest.tables import ALL_TABLES, REJECTS, RUNS, UTC
from zoom_ingest.zoom import ZoomClient

SECRET = "FAKE-zoom-secret-LEAKCHECK-7b3e91d0c2"
WRONG_SECRET = "FAKE-wrong-secret-LEAKCHECK-1a9f44e6"
DAYS = 4


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(seed=71, days=DAYS, activity_per_day=400, operation_per_day=40,
                   client_secret=SECRET) as s:  # fmt: skip
        yield s


def settings_for(sim: Simulator, **changes: object) -> Settings:
    return Settings(
        account_id=sim.account_id,
        client_id=sim.client_id,
        client_secret=Secret(SECRET),
        api_url=sim.api_url,
        oauth_url=sim.oauth_url,
        backfill_start=datetime.now(UTC).date() - timedelta(days=DAYS - 2),
        requests_per_second=500,
        timeout=2,
        max_retries=2,
    ).with_changes(**changes)


def forbidden(sim: Simulator) -> list[str]:
    """Everything that must never be seen, and pieces of it."""
    whole = [SECRET, WRONG_SECRET, *sim.issued_tokens()]
    basic = [
        base64.b64encode(f"{sim.client_id}:{secret}".encode()).decode()
        for secret in (SECRET, WRONG_SECRET)
    ]
    pieces = [s[4:20] for s in whole] + [s[-16:] for s in whole]
    return whole + basic + pieces


def assert_nothing_secret(sim: Simulator, texts: list[str], warehouse: Path | None) -> None:
    assert len(sim.issued_tokens()) >= 2, "the runs should have used several tokens"
    secrets = forbidden(sim)
    for index, text in enumerate(texts):
        for secret in secrets:
            assert secret not in text, f"text {index} shows a secret: …{text[:300]}"
    if warehouse is not None:
        engine = LocalEngine(warehouse)
        for spec in ALL_TABLES.values():
            dump = repr(engine.read_table(spec).to_pylist())
            for secret in secrets:
                assert secret not in dump, f"table {spec.name} holds a secret"


def log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Each record as formatted (with its traceback), its raw message and arguments."""
    texts = [caplog.text]
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in caplog.records:
        texts += [formatter.format(record), repr(record.msg), repr(record.args)]
    return texts


def test_no_secret_in_logs_errors_summaries_or_tables(sim, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # the root logger: every library's records reach it
    for name in ("urllib3", "requests", "zoom_ingest"):  # in case one was set higher
        caplog.set_level(logging.DEBUG, logger=name)
    texts: list[str] = []
    warehouse = tmp_path / "wh"

    def attempt(settings: Settings, expected: int) -> None:
        try:
            with ZoomClient(
                zoom_client_config(settings), backoff_base=0.01, backoff_max=0.05
            ) as client:
                summary = run(settings, LocalEngine(warehouse), progress=False, client=client)
        except Exception as exc:  # none is expected; its text is searched all the same
            texts.extend(traceback.format_exception(exc))
            raise
        texts.extend(summary.lines())
        texts.append(repr(summary))
        texts.extend(s.error or "" for s in summary.streams)
        assert summary.exit_code == expected, summary.lines()

    # Succeeds through a revocation, 5xx, resets, a 429 and bad bodies, all logged.
    for fault in (
        Fault("token_revoked", after_calls=2),
        Fault("http_503", count=2),
        Fault("reset", count=1),
        Fault("qps_429", count=1),
        Fault("html_200", count=1),
        Fault("truncated_json", count=1),
        Fault("page_token_expired", count=1),
    ):
        sim.faults.inject(fault)
    attempt(settings_for(sim), exit_codes.OK)
    sim.faults.clear()

    # Bad credentials: Zoom refuses the token.
    attempt(settings_for(sim, client_secret=Secret(WRONG_SECRET)), exit_codes.STREAM_FAILED)
    # 401 code 124 on every call: refreshed once, then an auth error.
    sim.faults.inject(Fault("token_revoked", count=None))
    attempt(settings_for(sim, mode="reconcile", reconcile_days=2), exit_codes.STREAM_FAILED)
    sim.faults.clear()
    # 500 from every API call, then from the token endpoint.
    sim.faults.inject(Fault("http_500", count=None))
    attempt(settings_for(sim, mode="reconcile", reconcile_days=2), exit_codes.STREAM_FAILED)
    sim.faults.clear()
    sim.revoke_tokens()
    sim.faults.inject(Fault("http_500", count=None, path="/oauth/token"))
    attempt(settings_for(sim, mode="reconcile", reconcile_days=2), exit_codes.STREAM_FAILED)
    sim.faults.clear()
    # The daily limit.
    sim.faults.inject(Fault("daily_429", count=None))
    attempt(settings_for(sim, mode="reconcile", reconcile_days=2), exit_codes.DAILY_LIMIT)
    sim.faults.clear()

    texts += log_texts(caplog)
    assert "Authorization" not in caplog.text
    assert any("retry" in t for t in texts) and any("124" in t for t in texts)  # it was logged
    assert_nothing_secret(sim, texts, warehouse)


def test_no_secret_in_the_output_of_zoom_ingest(sim, tmp_path):
    runner = soak.Runner(sim, tmp_path)
    warehouse = tmp_path / "wh"
    start = datetime.now(UTC).date() - timedelta(days=DAYS - 2)
    args = soak.run_args(
        warehouse, start, "--max-retries", "1", "--timeout", "2", "--requests-per-second", "300"
    )
    env = soak.cli_env(sim)  # --log-level DEBUG is in run_args

    sim.faults.inject(Fault("token_revoked", after_calls=3))
    assert runner.run(args, env).returncode == soak.EXIT_OK
    sim.faults.clear()
    wrong = soak.cli_env(sim, ZOOM_CLIENT_SECRET=WRONG_SECRET)
    assert runner.run(args, wrong).returncode == soak.EXIT_FAILED
    on_the_command_line = [*args, "--client-secret", WRONG_SECRET]
    assert runner.run(on_the_command_line, env).returncode == soak.EXIT_FAILED
    sim.faults.inject(Fault("token_revoked", count=None))
    assert runner.run([*args, "--mode", "reconcile"], env).returncode == soak.EXIT_FAILED
    sim.faults.clear()
    sim.faults.inject(Fault("http_500", count=None))
    no_retry = [*args, "--mode", "reconcile", "--max-retries", "0"]  # no backoff to wait out
    assert runner.run(no_retry, env).returncode == soak.EXIT_FAILED
    sim.faults.clear()
    status = soak.Runner(sim, tmp_path).run(
        [*soak.zoom_ingest_command(), "status", "--warehouse", str(warehouse)], env
    )
    assert status.returncode == 0

    outputs = [a.output for a in runner.attempts] + [status.output]
    assert any("ZOOM_CLIENT_SECRET" in text for text in outputs)  # the failure says what to fix
    assert_nothing_secret(sim, outputs, warehouse)


# -- TLS ---------------------------------------------------------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Counts the requests that got past the TLS handshake; refuses every one."""

    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        type(self).seen.append(self.path)
        body = b'{"reason": "Invalid client_id or client_secret", "error": "invalid_client"}'
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate (its URL, its cert)."""
    crypto = pytest.importorskip(
        "cryptography", reason="TLS test: needs `cryptography` to make a certificate"
    )
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    _Recorder.seen = []
    with loopback.serve(_Recorder, tls=context) as url:
        yield url, cert_file


def tls_settings(url: str) -> Settings:
    return Settings(
        account_id="acct-LEAKCHECK",
        client_id="client-LEAKCHECK",
        client_secret=Secret(SECRET),
        api_url=f"{url}/v2",
        oauth_url=f"{url}/oauth/token",
        backfill_start=datetime.now(UTC).date() - timedelta(days=1),
        timeout=5,
        max_retries=1,
    )


def test_an_untrusted_certificate_stops_the_run_before_anything_is_sent(
    https_server, tmp_path, monkeypatch
):
    url, _ = https_server
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)
    summary = run(tls_settings(url), LocalEngine(tmp_path), progress=False)
    assert summary.exit_code == exit_codes.ZOOM_UNREACHABLE
    errors = [s.error or "" for s in summary.streams]
    assert all("TLS verification failed" in e for e in errors), errors
    assert f"cannot reach {url}/oauth/token: TLS verification failed" in summary.lines()[1]
    assert _Recorder.seen == []  # the handshake failed: no request, no credentials sent
    assert all(SECRET not in line for line in summary.lines())


def test_the_same_server_once_trusted_is_reached(https_server, tmp_path, monkeypatch):
    """The control: with its certificate trusted, the same request does arrive, so it
    was verification (not the server) that refused it above."""
    url, cert = https_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    summary = run(tls_settings(url), LocalEngine(tmp_path), progress=False)
    assert summary.exit_code == exit_codes.STREAM_FAILED
    # Asked once: refused credentials are not asked for again by the other fetch threads.
    assert _Recorder.seen == ["/oauth/token"]
    errors = [s.error or "" for s in summary.streams]
    assert any("invalid_client" in e for e in errors), errors
    assert all(SECRET not in e for e in errors)


@pytest.mark.parametrize(
    "url",
    [
        "http://api.zoom.us/v2",
        "HTTP://api.zoom.us/v2",
        "http://localhost.example.com/v2",
        "http://127.0.0.1.nip.io/v2",
        "http://0.0.0.0/v2",
        "http://10.0.0.1/v2",
        "http://169.254.169.254/v2",
        "http://[fe80::1]/v2",
        "ftp://127.0.0.1/v2",
        "//api.zoom.us/v2",
    ],
)
def test_plain_http_is_refused_unless_to_loopback(url):
    with pytest.raises(SettingsError, match="api_url"):
        check_url("api_url", url)
    settings = tls_settings("https://127.0.0.1:1")
    # The client checks again where credentials leave the process, whatever built it.
    bypass = object.__new__(Settings)
    object.__setattr__(bypass, "__dict__", {**settings.__dict__, "api_url": url})
    with pytest.raises(SettingsError, match="api_url"):
        ZoomClient(zoom_client_config(bypass))


# -- a Zoom (or a proxy) that echoes credentials back ------------------------------------------

ECHO_CLIENT_ID = "client-ECHOCHECK"
ECHO_SECRET = "FAKE-echo-secret-LEAKCHECK-5d2c8a31"


class _Echo(http.server.BaseHTTPRequestHandler):
    """A token endpoint and a report API that put the credentials of each request into
    their answers: the Basic header in a refused token request, the bearer token in an
    API error's message and tracking id, and in a record that cannot be stored. Each
    answer's text is multi-line, in several encodings."""

    #: "refuse": the token endpoint refuses every request; "api": it issues tokens and
    #: the API echoes them.
    mode: ClassVar[str] = "refuse"
    issued: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        authorization = self.headers.get("Authorization", "")
        if type(self).mode == "refuse":
            echoed = (
                f"invalid client; your request was:\nPOST {self.path}\n"
                f"Authorization: {authorization}\r\n"
                f"authorization={quote(authorization, safe='')}\n\x1b[31m" + "x" * 600
            )
            self._json(401, {"reason": echoed, "error": "invalid_client"}, authorization)
            return
        token = f"tok.LEAKCHECK.{uuid.uuid4().hex}{uuid.uuid4().hex}"
        type(self).issued.append(token)
        self._json(200, {"access_token": token, "expires_in": 3600, "scope": "report:read:admin"})

    def do_GET(self) -> None:
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if "next_page_token=second" not in self.path:
            # A first page with a record that cannot be stored, carrying the token.
            records = [{"time": f"not a time {token}", "email": token, "type": "Sign in"}]
            body = {"activity_logs": records, "operation_logs": records}
            self._json(200, {**body, "next_page_token": "second", "page_size": 300})
            return
        message = (
            f"Invalid request for token {token}\nsent as access_token={quote(token)}"
            f"\nBearer {base64.b64encode(token.encode()).decode()}\n" + "y" * 700
        )
        self._json(400, {"code": 300, "message": message}, f"WEB_{token}")

    def _json(self, status: int, body: dict, tracking: str | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if tracking:
            self.send_header("x-zm-trackingid", tracking)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def echo_forbidden() -> list[str]:
    """The client secret, its Basic header forms, every issued token and their forms."""
    basic = base64.b64encode(f"{ECHO_CLIENT_ID}:{ECHO_SECRET}".encode()).decode()
    whole = [ECHO_SECRET, basic, f"Basic {basic}", *_Echo.issued]
    forms = [quote(s, safe="") for s in whole] + [
        base64.b64encode(t.encode()).decode().rstrip("=") for t in _Echo.issued
    ]
    pieces = [s[4:20] for s in whole] + [s[-16:] for s in whole]
    return whole + forms + pieces


def echo_settings(url: str, **changes: object) -> Settings:
    return Settings(
        account_id="acct-ECHOCHECK",
        client_id=ECHO_CLIENT_ID,
        client_secret=Secret(ECHO_SECRET),
        api_url=f"{url}/v2",
        oauth_url=f"{url}/oauth/token",
        backfill_start=datetime.now(UTC).date() - timedelta(days=1),
        timeout=5,
        max_retries=0,
    ).with_changes(**changes)


@pytest.fixture
def echo_server() -> Iterator[str]:
    _Echo.mode, _Echo.issued = "refuse", []
    with loopback.serve(_Echo) as url:
        yield url


def assert_no_echoed_secret(texts: list[str], warehouse: Path) -> None:
    secrets = echo_forbidden()
    for index, text in enumerate(texts):
        for secret in secrets:
            assert secret not in text, f"text {index} shows {secret[:6]}…: {text[:400]}"
    engine = LocalEngine(warehouse)
    for spec in ALL_TABLES.values():
        dump = repr(engine.read_table(spec).to_pylist())
        for secret in secrets:
            assert secret not in dump, f"table {spec.name} holds {secret[:6]}…"


@pytest.mark.parametrize("mode", ["refuse", "api"])
def test_credentials_echoed_by_the_server_are_masked_everywhere(
    echo_server, mode, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    _Echo.mode = mode
    warehouse = tmp_path / "wh"
    texts: list[str] = []
    try:
        summary = run(echo_settings(echo_server), LocalEngine(warehouse), progress=False)
    except Exception as exc:  # none is expected; its text is searched all the same
        texts.extend(traceback.format_exception(exc))
        raise
    assert summary.exit_code == exit_codes.STREAM_FAILED, summary.lines()
    if mode == "api":
        assert len(_Echo.issued) == 1
    texts += [*summary.lines(), repr(summary), *log_texts(caplog)]
    texts += [s.error or "" for s in summary.streams]
    assert_no_echoed_secret(texts, warehouse)

    runs = LocalEngine(warehouse).read_table(RUNS).to_pylist()
    errors = [row["error"] for row in runs]
    assert errors and all(errors), runs
    for error in errors:
        # One line, bounded, still saying what Zoom said (the masked text, cut).
        assert "\n" not in error and "\r" not in error and "\x1b" not in error, error
        assert len(error) <= 500, error
        if mode == "api":  # Zoom's long message: cut, and the cut marked
            assert len(error) == 500 and error.endswith("…"), error
        assert "***" in error, error
        assert ("invalid_client" if mode == "refuse" else "code 300") in error
    if mode == "api":
        rejects = LocalEngine(warehouse).read_table(REJECTS).to_pylist()
        assert rejects and all("***" in r["raw_json"] for r in rejects), rejects


def test_credentials_echoed_by_the_server_never_reach_the_terminal(echo_server, tmp_path):
    warehouse = tmp_path / "wh"
    start = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOOM_")}
    env |= {
        "ZOOM_ACCOUNT_ID": "acct-ECHOCHECK",
        "ZOOM_CLIENT_ID": ECHO_CLIENT_ID,
        "ZOOM_CLIENT_SECRET": ECHO_SECRET,
        "ZOOM_API_URL": f"{echo_server}/v2",
        "ZOOM_OAUTH_URL": f"{echo_server}/oauth/token",
    }
    outputs: list[str] = []
    for mode in ("refuse", "api"):
        _Echo.mode = mode
        done = subprocess.run(
            [*soak.run_args(warehouse, dt.date.fromisoformat(start), "--max-retries", "0")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == exit_codes.STREAM_FAILED, done.stderr[-2000:]
        outputs += [done.stdout, done.stderr]
    assert any("invalid_client" in text for text in outputs)
    assert any("code 300" in text for text in outputs)
    assert _Echo.issued, "the API mode should have issued a token"
    assert_no_echoed_secret(outputs, warehouse)


def test_the_masker_covers_every_form_and_stores_one_bounded_line():
    from zoom_ingest import masking

    token = "eyJ.tok+en/LEAKCHECK=" + uuid.uuid4().hex
    masking.register_secret(token)
    masking.register_client_credentials("client-MASKCHECK", "FAKE-mask-secret-LEAKCHECK")
    basic = base64.b64encode(b"client-MASKCHECK:FAKE-mask-secret-LEAKCHECK").decode()
    forms = [
        token,
        quote(token, safe=""),
        json.dumps(token)[1:-1],
        base64.b64encode(token.encode()).decode(),
        base64.urlsafe_b64encode(token.encode()).decode(),
        f"Basic {basic}",
        quote(f"Basic {basic}", safe=""),
        "FAKE-mask-secret-LEAKCHECK",
    ]
    for form in forms:
        masked = masking.mask(f"<{form}>")
        assert token[:12] not in masked and basic[:12] not in masked, (form, masked)
        assert "LEAKCHECK" not in masked, (form, masked)
    # One line, bounded, masked before it is cut (no head of a secret left at the cut).
    text = "x" * 490 + token + "\nnext\r\n\x1b[31mline\x00"
    stored = masking.one_line(text)
    assert stored is not None and len(stored) <= masking.MAX_STORED_ERROR
    assert token[:8] not in stored and "\n" not in stored and "\x1b" not in stored
    assert stored.endswith("…")
    assert masking.one_line("a\n\tb\x00c") == "a b c"
