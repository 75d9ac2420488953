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
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from requests.adapters import DEFAULT_CA_BUNDLE_PATH, HTTPAdapter
from requests.cookies import extract_cookies_to_jar, get_cookie_header
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity, get_environ_proxies
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError
from urllib3.exceptions import SSLError as urllib3_SSLError


def environment_ca_bundle() -> str | None:
    """The CA bundle the environment names, as requests reads it (None: the default)."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


class EnvironmentAdapter(HTTPAdapter):
    """An `HTTPAdapter` that applies the environment's proxies and CA bundle, resolved
    once for the given URLs' origins (scheme and host; other origins are resolved when
    first seen)."""

    def __init__(self, urls: Iterable[str], *, pool_connections: int, pool_maxsize: int) -> None:
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
        # `response.content` would read the body in 10 kB pieces, each through several
        # layers of urllib3; a page is one read. requests keeps a read body in `_content`
        # (it has no public setter): later `content`, `text` and `json()` use it as ever.
        response._content = _read_body(response.raw)
        response._content_consumed = True
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

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        if not proxies:
            proxies = self.proxies_for(request.url or "")
        if verify is True and self.ca_bundle:
            verify = self.ca_bundle
        return super().send(
            request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
        )


def _read_body(raw: Any) -> bytes:
    """The whole body of a urllib3 response, decoded (gzip, deflate, …) as
    `Response.content` decodes it, with the exceptions `Response.content` raises."""
    try:
        return raw.read(decode_content=True) or b""
    except ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except ReadTimeoutError as exc:
        raise requests.ConnectionError(exc) from exc
    except urllib3_SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc
