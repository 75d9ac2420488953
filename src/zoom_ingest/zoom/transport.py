"""Sends the client's requests through the proxies and CA bundle the environment names,
read once per client instead of on every call.

A `requests.Session` that trusts the environment (`trust_env`, its default) looks up
the proxy variables, NO_PROXY, ~/.netrc and REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE on
every request: about 7% of the job's CPU at 40 requests/s. The client's own session
turns that off and mounts `EnvironmentAdapter`, which resolves the same settings for
the API and token URLs when the client is made, with requests' own functions, so proxy
and custom-CA users see no difference. ~/.netrc is not read: the client always sends
its own credentials (a .netrc entry for Zoom's host would have replaced the bearer
token with Basic auth).

`EnvironmentAdapter.get` is the client's report GET: what `session.get(url,
headers=…, timeout=…, allow_redirects=False)` does for that session, without the
general-purpose work requests repeats on every call for a request that is always the
same shape (merging settings, preparing and re-quoting the URL, hooks, netrc, the
cookie jars when no cookie was ever set): about a sixth of a call's CPU.

Every request the adapter sends is bounded (`TransportLimits`), whatever the server does:

- a whole deadline from the first byte sent to the last byte of the body: a watchdog
  thread shuts down the socket of a request that outlives it, so a server that trickles
  its headers or body a byte a second (each read within the per-read timeout) is cut
  off at the deadline; the error is `DeadlineExceeded`;
- a cap on the body's size, compressed and decompressed: the body is read in pieces and
  inflated with a bound on each step (a gzip bomb is never inflated into memory); the
  error is `ResponseTooLarge`. Only gzip and deflate are accepted (and asked for).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from requests.adapters import DEFAULT_CA_BUNDLE_PATH, HTTPAdapter
from requests.cookies import extract_cookies_to_jar, get_cookie_header
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity, get_environ_proxies
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError
from urllib3.exceptions import SSLError as urllib3_SSLError

#: What the client accepts as Content-Encoding: what `_BodyReader` can inflate with a cap.
ACCEPT_ENCODING = "gzip, deflate"
#: Bytes asked of the socket per read of a body (a page is one or two reads).
_READ_SIZE = 1 << 20


@dataclass(frozen=True)
class TransportLimits:
    """The bounds of every request: `deadline` seconds from sending to the body's last
    byte, and `max_body_bytes` of body (on the wire and once decompressed). `names`
    are the settings that set them, for the one-line errors."""

    deadline: float = 120.0
    max_body_bytes: int = 16 * 1024 * 1024
    deadline_setting: str = "request_deadline"
    size_setting: str = "max_response_bytes"


class DeadlineExceeded(requests.Timeout):
    """The request outlived its whole deadline (connect, headers and body)."""


class ResponseTooLarge(requests.RequestException):
    """The response body (compressed or decompressed) is larger than the cap."""


def environment_ca_bundle() -> str | None:
    """The CA bundle the environment names, as requests reads it (None: the default)."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


class EnvironmentAdapter(HTTPAdapter):
    """An `HTTPAdapter` that applies the environment's proxies and CA bundle, resolved
    once for the given URLs' origins (scheme and host; other origins are resolved when
    first seen)."""

    def __init__(
        self,
        urls: Iterable[str],
        *,
        pool_connections: int,
        pool_maxsize: int,
        limits: TransportLimits | None = None,
    ) -> None:
        self.limits = limits or TransportLimits()
        super().__init__(
            pool_connections=pool_connections, pool_maxsize=pool_maxsize, max_retries=0
        )
        self._proxies: dict[str, dict[str, str]] = {}
        for url in urls:
            self.proxies_for(url)
        #: TLS verification stays on; a bundle only changes which CAs are trusted.
        self.ca_bundle = environment_ca_bundle()
        # requests asks the file system whether the bundle is a folder on every call
        # (a stat that gives up the GIL to the normaliser, 5% of the job's CPU): once.
        self._ca_key = (
            "ca_cert_dir" if self.ca_bundle and os.path.isdir(self.ca_bundle) else "ca_certs"
        )
        # …and, for https, whether the CAs (the bundle or certifi's) exist and are a folder.
        location = self.ca_bundle or DEFAULT_CA_BUNDLE_PATH
        self._ca_location = location if location and os.path.exists(location) else None
        self._ca_location_is_dir = bool(self._ca_location) and os.path.isdir(location)
        #: URL (without query) → as requests' `prepare_url` normalises it (IDNA host,
        #: re-quoted path): worked out once per report path, not on every page.
        self._prepared_urls: dict[str, str] = {}

    def get(
        self,
        session: requests.Session,
        url: str,
        params: Mapping[str, Any],
        headers: Mapping[str, str],
        timeout: float,
    ) -> requests.Response:
        """`session.get(url, params=params, headers=headers, timeout=timeout,
        verify=True, allow_redirects=False)` for a session that has this adapter
        mounted, `trust_env` off, no hooks, auth or params of its own (the client's
        own session): the same request on the wire (URL, headers, cookies, proxies, TLS
        settings), the same response and the same exceptions, with less CPU.

        `params` values are strings or numbers (None leaves the parameter out, as
        requests does)."""
        request = requests.PreparedRequest()
        request.method = "GET"
        request.url = self._with_query(url, params)
        # requests' merge: the session's headers, then the call's on top.
        merged = CaseInsensitiveDict(session.headers)
        merged.update(headers)
        for header in merged.items():
            check_header_validity(header)  # requests refuses a header with a line break
        request.headers = merged
        request.body = None
        jar = session.cookies
        if len(jar):  # a jar with no cookies adds no header; asking it costs a parse
            cookie = get_cookie_header(jar, request)
            if cookie is not None:
                request.headers["Cookie"] = cookie
        response = self.send(request, timeout=timeout, verify=True)
        if "set-cookie" in response.raw.headers:
            extract_cookies_to_jar(jar, request, response.raw)
        return response

    def _with_query(self, url: str, params: Mapping[str, Any]) -> str:
        """The URL requests' `prepare_url(url, params)` makes. The query is `urlencode`d
        as requests does it; requests then re-quotes the whole URL, which leaves
        urlencode's output as it is (only unreserved characters, `%XX`, `+`, `=`, `&`)."""
        prepared = self._prepared_urls.get(url)
        if prepared is None:
            probe = requests.PreparedRequest()
            probe.prepare_url(url, None)
            prepared = self._prepared_urls[url] = probe.url or url
        query = urlencode(
            [(key, value) for key, value in params.items() if value is not None], doseq=True
        )
        if not query:
            return prepared
        return f"{prepared}{'&' if urlsplit(prepared).query else '?'}{query}"

    def proxies_for(self, url: str) -> dict[str, str]:
        """The environment's proxies for `url` ({} when NO_PROXY excludes its host)."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        proxies = self._proxies.get(origin)
        if proxies is None:
            proxies = self._proxies[origin] = dict(get_environ_proxies(url))
        return proxies

    def build_connection_pool_key_attributes(
        self,
        request: requests.PreparedRequest,
        verify: bool | str,
        cert: str | tuple[str, str] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """requests' own answer, without its per-call `isdir` for the bundle."""
        if self.ca_bundle is None or verify != self.ca_bundle:
            return super().build_connection_pool_key_attributes(request, verify, cert)
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, True, cert)
        pool_kwargs[self._ca_key] = verify
        return host_params, pool_kwargs

    def cert_verify(
        self, conn: Any, url: str, verify: bool | str, cert: str | tuple[str, str] | None
    ) -> None:
        """requests' own settings for the connection, without its per-call `exists` and
        `isdir` for the CAs (requests' own check raises when they were missing at start)."""
        expected = True if self.ca_bundle is None else self.ca_bundle
        if (
            verify != expected
            or verify is False
            or cert
            or self._ca_location is None
            or not url.lower().startswith("https")
        ):
            super().cert_verify(conn, url, verify, cert)
            return
        conn.cert_reqs = "CERT_REQUIRED"
        if self._ca_location_is_dir:
            conn.ca_cert_dir = self._ca_location
        else:
            conn.ca_certs = self._ca_location

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS pools keep their own connections
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """requests' send within the limits: the whole deadline watched, no single wait
        longer than what is left of it, and (unless `stream`) the body read here, capped.
        `response.content` then returns the body read (requests keeps it in `_content`)."""
        if not proxies:
            proxies = self.proxies_for(request.url or "")
        if verify is True and self.ca_bundle:
            verify = self.ca_bundle
        limits = self.limits
        deadline = time.monotonic() + limits.deadline
        timeout = _within(timeout, limits.deadline)
        with _watching(deadline) as watch:
            try:
                response = super().send(
                    request,
                    stream=stream,
                    timeout=timeout,
                    verify=verify,
                    cert=cert,
                    proxies=proxies,
                )
                if not stream:
                    response._content = _BodyReader(response.raw, limits, deadline).read()
                    response._content_consumed = True
            except (requests.ConnectionError, requests.Timeout, ProtocolError) as exc:
                if watch.expired or time.monotonic() >= deadline:
                    raise _deadline_error(limits) from None
                if isinstance(exc, ProtocolError):  # not wrapped by requests: a body read
                    raise requests.exceptions.ChunkedEncodingError(exc) from exc
                raise
            except requests.exceptions.ChunkedEncodingError:
                if watch.expired or time.monotonic() >= deadline:
                    raise _deadline_error(limits) from None
                raise
        return response


def _within(
    timeout: float | tuple[float | None, float | None] | None, limit: float
) -> tuple[float, float]:
    """requests' (connect, read) timeout, each no longer than `limit`."""
    if isinstance(timeout, tuple):
        connect, read = timeout
    else:
        connect = read = timeout
    return (min(connect or limit, limit), min(read or limit, limit))


def _deadline_error(limits: TransportLimits) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"no whole answer within {limits.deadline:g} s ({limits.deadline_setting})"
    )


def _size_error(limits: TransportLimits, what: str) -> ResponseTooLarge:
    return ResponseTooLarge(
        f"{what} larger than {limits.max_body_bytes:,} bytes ({limits.size_setting})"
    )


class _BodyReader:
    """Reads a urllib3 response's body in pieces (`decode_content=False`) and inflates
    it here, each step bounded by what is left of the cap, checking the deadline between
    pieces (the watchdog cuts a piece that blocks). Raises what `Response.content` would
    (ChunkedEncodingError, ContentDecodingError, ConnectionError, SSLError), or
    ResponseTooLarge."""

    def __init__(self, raw: Any, limits: TransportLimits, deadline: float) -> None:
        self.raw = raw
        self.limits = limits
        self.deadline = deadline

    def read(self) -> bytes:
        raw, cap = self.raw, self.limits.max_body_bytes
        try:
            inflate = _inflater(raw.headers.get("content-encoding", ""), cap)
            pieces: list[bytes] = []
            wire = size = 0
            while True:
                chunk = raw.read(_READ_SIZE, decode_content=False)
                if time.monotonic() >= self.deadline:
                    raise _deadline_error(self.limits)
                if not chunk:
                    break
                wire += len(chunk)
                if wire > cap:
                    raise _size_error(self.limits, "response body")
                if inflate is not None:
                    chunk = inflate.feed(chunk, cap - size)
                size += len(chunk)
                if size > cap:
                    raise _size_error(self.limits, "decompressed response body")
                pieces.append(chunk)
            if inflate is not None:
                inflate.finish()
            return b"".join(pieces)
        except (ResponseTooLarge, DeadlineExceeded, requests.exceptions.ContentDecodingError):
            raw.close()  # the rest of the body is never read; the connection is dropped
            raise
        except ProtocolError as exc:
            raise requests.exceptions.ChunkedEncodingError(exc) from exc
        except DecodeError as exc:
            raise requests.exceptions.ContentDecodingError(exc) from exc
        except ReadTimeoutError as exc:
            raise requests.ConnectionError(exc) from exc
        except urllib3_SSLError as exc:
            raise requests.exceptions.SSLError(exc) from exc


class _Inflater:
    """gzip (one member or several, as urllib3 reads it) or deflate (zlib-wrapped, or raw
    as some servers send it), inflated with a bound on each step's output."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._gzip = encoding in ("gzip", "x-gzip")
        self._raw_deflate_tried = False
        self._inflate = self._new()

    def _new(self) -> Any:
        wbits = 16 + zlib.MAX_WBITS if self._gzip else zlib.MAX_WBITS
        return zlib.decompressobj(wbits)

    def feed(self, data: bytes, room: int) -> bytes:
        """Inflate `data`; at most `room` + 1 bytes out (one more: the caller sees it
        went over)."""
        out: list[bytes] = []
        produced = 0
        while data:
            try:
                piece = self._inflate.decompress(data, room + 1 - produced)
            except zlib.error:
                if self._gzip or self._raw_deflate_tried or produced:
                    raise requests.exceptions.ContentDecodingError(
                        f"the {self.encoding} body does not inflate"
                    ) from None
                self._raw_deflate_tried = True  # deflate without the zlib wrapper
                self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
                continue
            out.append(piece)
            produced += len(piece)
            if produced > room:
                break  # over the cap: the caller stops here
            if self._inflate.unconsumed_tail:
                data = self._inflate.unconsumed_tail
            elif self._inflate.eof and self._inflate.unused_data:
                if not self._gzip:
                    raise requests.exceptions.ContentDecodingError(
                        f"the {self.encoding} body goes on after its end"
                    )
                data = self._inflate.unused_data  # the next gzip member
                self._inflate = self._new()
            else:
                data = b""
        return b"".join(out)

    def finish(self) -> None:
        if not self._inflate.eof:
            raise requests.exceptions.ContentDecodingError(
                f"the {self.encoding} body ends before its end"
            )


def _inflater(header: str, cap: int) -> _Inflater | None:
    """The inflater a Content-Encoding header asks for (None: the body as it is)."""
    encoding = header.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _Inflater(encoding)
    raise requests.exceptions.ContentDecodingError(
        f"content encoding {header.strip()[:40]!r} is not one the client asked for"
    )


# --- the watchdog: one thread that cuts requests off at their deadline -----------------


class _Watch:
    """The connections one request uses, and whether the watchdog cut them off."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.connections: list[HTTPConnection] = []
        # The sockets too: an answer with "Connection: close" takes the socket from its
        # connection (http.client hands it to the response), and the body is then read
        # from a socket the connection no longer names.
        self.sockets: list[socket.socket] = []
        self.expired = False


class _Watchdog:
    """Shuts down the socket of every watched request past its deadline. A blocked read
    then returns at once (end of stream), whatever the per-read timeout."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._watches: set[_Watch] = set()
        self._thread: threading.Thread | None = None
        self._local = threading.local()

    def current(self) -> _Watch | None:
        return getattr(self._local, "watch", None)

    @contextmanager
    def watching(self, deadline: float) -> Iterator[_Watch]:
        watch = _Watch(deadline)
        previous = self.current()
        self._local.watch = watch
        with self._cond:
            self._watches.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="zoom-request-deadline", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        try:
            yield watch
        finally:
            self._local.watch = previous
            with self._cond:
                self._watches.discard(watch)

    def watch_connection(self, connection: HTTPConnection) -> None:
        watch = self.current()
        if watch is None:
            return
        sock = getattr(connection, "sock", None)
        with self._cond:
            if connection not in watch.connections:
                watch.connections.append(connection)
            if sock is not None and sock not in watch.sockets:
                watch.sockets.append(sock)
            if watch.expired:
                _shut(connection)
                _shut_socket(sock)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for watch in [w for w in self._watches if w.deadline <= now and not w.expired]:
                    watch.expired = True
                    for connection in watch.connections:
                        _shut(connection)
                    for sock in watch.sockets:
                        _shut_socket(sock)
                pending = [w.deadline for w in self._watches if not w.expired]
                self._cond.wait(min(pending) - now if pending else None)


def _shut(connection: HTTPConnection) -> None:
    _shut_socket(getattr(connection, "sock", None))


def _shut_socket(sock: socket.socket | None) -> None:
    if sock is None:
        return
    # The plain socket's shutdown, also for a TLS socket: SSLSocket.shutdown would drop
    # its TLS state under the reading thread. OSError: closed already.
    with suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_WATCHDOG = _Watchdog()
_watching = _WATCHDOG.watching


class _Watched:
    """A urllib3 connection that the watchdog cuts off at its request's deadline."""

    def connect(self) -> None:
        _WATCHDOG.watch_connection(self)  # type: ignore[arg-type]
        super().connect()  # type: ignore[misc]
        _WATCHDOG.watch_connection(self)  # type: ignore[arg-type]  # now with its socket

    def request(self, *args: Any, **kwargs: Any) -> None:
        _WATCHDOG.watch_connection(self)  # type: ignore[arg-type]
        super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
