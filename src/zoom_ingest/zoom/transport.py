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
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import DEFAULT_CA_BUNDLE_PATH, HTTPAdapter
from requests.utils import get_environ_proxies


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
