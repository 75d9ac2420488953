"""A hostile Zoom on 127.0.0.1: the report and token endpoints of one account, serving a
known truth, that misbehave on demand the way APIs, proxies and middleboxes do.

`HostileZoom(truth, hostility)` serves `truth` (activity-log records) for
GET /v2/report/activities newest first, `page_size` a page, chained by opaque tokens, and
issues access tokens at POST /oauth/token (each one remembered in `issued`, for the
secret checks). `Hostility` picks one misbehaviour (`KINDS`), from which API call on it
starts and how many calls it hits; everything else is a well-behaved Zoom. It imports
nothing of the product: what it serves is only what its truth and the HTTP wire say.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import threading
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from support import loopback

ACCOUNT_ID = "hostile-account"
CLIENT_ID = "hostile-client-id"
CLIENT_SECRET = "hostile-client-secret-Zq81"
#: What a Basic authorisation header of the credentials carries.
BASIC = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()

#: Misbehaviours of 200 pages: the records list, the body, the order, the tokens.
PAGE_KINDS = (
    "records_missing",  # the report's keys, no records list
    "records_null",
    "records_object",
    "records_string",
    "wrong_types",  # a record whose fields have the wrong JSON types (added, not truth)
    "not_json",
    "truncated",
    "oldest_first",  # a page's records oldest first
    "shuffled_pages",  # the window's pages served out of order
    "endless_token",  # after the last page, fresh tokens with fresh (fake) records forever
    "repeat_token",  # the next token is the one just sent
    "fresh_same",  # a fresh token that brings the very same records again
    "stray_old",  # one record far older than the window on its first page
    "stray_new",  # one record far newer than the window
)
#: Encodings and sizes of a body.
WIRE_KINDS = (
    "gzip",
    "gzip_members",  # gzip of several members (valid)
    "deflate",
    "raw_deflate",  # deflate without its zlib wrapper (valid, as some servers send it)
    "bad_charset",  # Content-Type names a charset that does not exist
    "utf16_charset",  # Content-Type says utf-16, the body is UTF-8
    "huge",  # a body beyond any sane cap
    "bomb",  # ~1 MB of gzip that inflates to 1 GiB
    "slow_body",  # the body one byte a second
    "slow_body_close",  # the same after "Connection: close" (the response owns the socket)
    "slow_headers",  # the status line and headers one byte a second
)
#: Error answers that carry what they must not.
ERROR_KINDS = (
    "error_echo_headers",  # a 500 whose body echoes the request's headers
    "error_token_in_tracking",  # a 500 with the access token in x-zm-trackingid and message
    "token_error_echo",  # the token endpoint answers 401 echoing the Basic credentials
)
KINDS = PAGE_KINDS + WIRE_KINDS + ERROR_KINDS
#: Kinds after which a well-behaved Zoom serves every record: a run must exit 0 through
#: them, complete.
HARMLESS = frozenset({"gzip", "gzip_members", "deflate", "raw_deflate", "wrong_types"})


@dataclass(frozen=True)
class Hostility:
    """One misbehaviour: `kind`, from the API call numbered `first_call` (0: the first)
    on, for `calls` calls (None: every call from then on)."""

    kind: str | None = None
    first_call: int = 0
    calls: int | None = None
    page_size: int = 300

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}")


def truth_records(days: int, per_day: int, seed: int, now: datetime) -> list[dict[str, Any]]:
    """Activity-log records over the `days` UTC days up to `now` (none later than a
    minute before it), newest first, each with a unique email."""
    rng = random.Random(seed)
    start = datetime.combine(now.date() - timedelta(days=days - 1), datetime.min.time(), UTC)
    span = int((now - timedelta(minutes=1) - start).total_seconds())
    records = []
    for n in range(days * per_day):
        moment = start + timedelta(seconds=rng.randrange(span))
        records.append(
            {
                "email": f"user{n}@hostile.test",
                "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "type": rng.choice(["Sign in", "Sign out"]),
                "ip_address": f"10.0.{n % 250}.{n % 199}",
                "client_type": "Mac",
                "version": "6.0.2",
            }
        )
    records.sort(key=lambda r: r["time"], reverse=True)
    return records


@dataclass
class _Chain:
    """What a page token stands for."""

    first: date
    last: date
    offset: int
    extra: int = 0  # fake pages already served (endless_token)
    swapped: bool = False  # shuffled_pages: the first page is still owed


@dataclass
class HostileZoom:
    truth: list[dict[str, Any]]
    hostility: Hostility
    #: Every access token issued.
    issued: list[str] = field(default_factory=list)
    api_calls: int = 0
    hits: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _chains: dict[str, _Chain] = field(default_factory=dict)

    def due(self) -> bool:
        """Counts an API call; True when the hostility hits it."""
        with self._lock:
            number = self.api_calls
            self.api_calls += 1
            h = self.hostility
            if h.kind is None or number < h.first_call:
                return False
            if h.calls is not None and self.hits >= h.calls:
                return False
            self.hits += 1
            return True

    def new_token(self, chain: _Chain) -> str:
        token = uuid.uuid4().hex
        with self._lock:
            self._chains[token] = chain
        return token

    def chain(self, token: str) -> _Chain | None:
        with self._lock:
            return self._chains.get(token)

    def records_between(self, first: date, last: date) -> list[dict[str, Any]]:
        return [r for r in self.truth if first.isoformat() <= r["time"][:10] <= last.isoformat()]

    @contextmanager
    def serving(self) -> Iterator[str]:
        """Serve on 127.0.0.1; yield the base URL (the API is under /v2)."""
        handler = type("Handler", (_Handler,), {"zoom": self})
        with loopback.serve(handler) as url:
            yield url


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    zoom: ClassVar[HostileZoom]

    def log_message(self, *args: object) -> None:
        pass

    # -- token endpoint -------------------------------------------------------------------

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        zoom = self.zoom
        if urlsplit(self.path).path != "/oauth/token":
            self._send(404, b'{"code": 404, "message": "no such endpoint"}')
            return
        calls = zoom.hostility.calls
        if zoom.hostility.kind == "token_error_echo" and (calls is None or zoom.hits < calls):
            with zoom._lock:
                zoom.hits += 1
            echo = {"reason": "invalid_client", "error": f"bad {self.headers['Authorization']}"}
            self._send(401, json.dumps(echo).encode())
            return
        token = f"hostile-access-{uuid.uuid4().hex}"
        with zoom._lock:
            zoom.issued.append(token)
        body = {"access_token": token, "token_type": "bearer", "expires_in": 3599}
        body["scope"] = "report:read:admin"
        self._send(200, json.dumps(body).encode())

    # -- report endpoint ------------------------------------------------------------------

    def do_GET(self) -> None:
        zoom = self.zoom
        parts = urlsplit(self.path)
        if parts.path != "/v2/report/activities":
            self._send(404, b'{"code": 404, "message": "no such endpoint"}')
            return
        auth = self.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in zoom.issued:
            self._send(401, b'{"code": 124, "message": "Invalid access token."}')
            return
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        hit = zoom.due()
        kind = zoom.hostility.kind if hit else None
        if kind == "error_echo_headers":
            echoed = json.dumps({"code": 500, "message": f"upstream said {dict(self.headers)}"})
            self._send(500, echoed.encode())
            return
        if kind == "error_token_in_tracking":
            token = auth.removeprefix("Bearer ")
            body = json.dumps({"code": 500, "message": f"session {token} failed"})
            self._send(500, body.encode(), headers={"x-zm-trackingid": token})
            return
        body = self._page(query, kind)
        if body is None:
            return
        self._wire(body, kind)

    def _page(self, query: dict[str, str], kind: str | None) -> bytes | None:
        zoom = self.zoom
        size = zoom.hostility.page_size
        token = query.get("next_page_token", "")
        if token:
            chain = zoom.chain(token)
            if chain is None:
                self._send(400, b'{"code": 300, "message": "The next page token is invalid."}')
                return None
        else:
            first = date.fromisoformat(query["from"])
            last = date.fromisoformat(query["to"])
            chain = _Chain(first, last, 0)
        records = zoom.records_between(chain.first, chain.last)
        offset, following = chain.offset, chain.offset + size
        page = records[offset:following]
        next_chain = _Chain(chain.first, chain.last, following)
        if chain.swapped:  # the first page, served second
            page, next_chain = records[:size], _Chain(chain.first, chain.last, 2 * size)
        elif kind == "shuffled_pages" and offset == 0 and len(records) > size:
            page = records[size : 2 * size]  # the second page first
            next_chain = _Chain(chain.first, chain.last, size, swapped=True)
        next_token = zoom.new_token(next_chain) if next_chain.offset < len(records) else ""
        page = list(page)
        if kind == "endless_token" and (offset > 0 or not next_token):
            # No end: from the second page on (or once the records run out), fresh fake
            # records at the instant the real ones had reached (in order: ties), and a
            # fresh token, page after page. They begin on the second page, not after the
            # last real one: a window reaching below the run's start stops early, and
            # whether one does depends on the time of day (how the dates are cut).
            if offset > 0 or not records:
                last = min(offset, len(records)) - 1  # the last real record served
                moment = records[last]["time"] if records else f"{chain.first}T12:00:00Z"
                page = [
                    {"time": moment, "email": f"fake-{chain.extra}-{n}", "type": "Sign in"}
                    for n in range(size)
                ]
                # The real records resume where they stopped once the hostility ends.
                more = _Chain(chain.first, chain.last, offset, chain.extra + 1)
            else:
                more = _Chain(chain.first, chain.last, following, chain.extra + 1)
            next_token = zoom.new_token(more)
        elif kind == "repeat_token":
            next_token = token or zoom.new_token(chain)
        elif kind == "fresh_same":
            next_token = zoom.new_token(chain)  # the same page again, under a new name
        elif kind == "oldest_first":
            page.reverse()
        elif kind in ("stray_old", "stray_new"):
            shift = timedelta(days=-40 if kind == "stray_old" else 40)
            moment = datetime.combine(chain.first, datetime.min.time(), UTC) + shift
            stray = {"time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"), "email": "stray@hostile"}
            page.insert(0 if kind == "stray_new" else len(page), stray)
        elif kind == "wrong_types":
            page.append({"time": 1700000000, "email": 42, "type": ["Sign in"]})
        body: dict[str, Any] = {
            "from": chain.first.isoformat(),
            "to": chain.last.isoformat(),
            "page_size": size,
            "next_page_token": next_token,
            "activity_logs": page,
        }
        if kind == "records_missing":
            del body["activity_logs"]
        elif kind == "records_null":
            body["activity_logs"] = None
        elif kind == "records_object":
            body["activity_logs"] = {"0": page}
        elif kind == "records_string":
            body["activity_logs"] = json.dumps(page)
        data = json.dumps(body).encode()
        if kind == "not_json":
            return b"<html><body>502 Bad Gateway</body></html>"
        if kind == "truncated":
            return data[: len(data) // 2]
        return data

    def _wire(self, body: bytes, kind: str | None) -> None:
        headers: dict[str, str] = {}
        content_type = "application/json"
        if kind in ("gzip", "bomb"):
            body = gzip.compress(body) if kind == "gzip" else bomb()
            headers["Content-Encoding"] = "gzip"
        elif kind == "gzip_members":
            middle = len(body) // 2
            body = gzip.compress(body[:middle]) + gzip.compress(body[middle:])
            headers["Content-Encoding"] = "gzip"
        elif kind == "deflate":
            body = zlib.compress(body)
            headers["Content-Encoding"] = "deflate"
        elif kind == "raw_deflate":
            packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            body = packer.compress(body) + packer.flush()
            headers["Content-Encoding"] = "deflate"
        elif kind == "bad_charset":
            content_type += "; charset=klingon-8"
        elif kind == "utf16_charset":
            content_type += "; charset=utf-16"
        if kind == "slow_headers":
            self._trickle(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
            return
        padding = HUGE_PADDING if kind == "huge" else 0
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) + padding))
        if kind == "slow_body_close":
            headers["Connection"] = "close"
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if kind in ("slow_body", "slow_body_close"):
            self._trickle(body)
            return
        try:
            if padding:  # JSON with 64 MiB of blanks inside, written a block at a time
                self.wfile.write(body[:-1])
                block = b" " * (1 << 20)
                for _ in range(padding // len(block)):
                    self.wfile.write(block)
                body = body[-1:]
            self.wfile.write(body)
        except OSError:
            self.close_connection = True  # the client hung up (a cap): fine

    def _trickle(self, data: bytes) -> None:
        """One byte a second until the client hangs up (at most a minute)."""
        loopback.trickle(self, data, limit=60)

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


#: Blanks a `huge` body carries.
HUGE_PADDING = 64 << 20
_BOMB: list[bytes] = []


def bomb() -> bytes:
    """About 1 MB of gzip (64 members) that inflates to 1 GiB of spaces; made once."""
    if not _BOMB:
        member = gzip.compress(b" " * (16 << 20), compresslevel=9)
        _BOMB.append(member * 64)
    return _BOMB[0]
