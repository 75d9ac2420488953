"""Server-to-Server OAuth: one access token per run, shared by every thread.

`POST <oauth_url>` with HTTP Basic client_id:client_secret and the form body
`grant_type=account_credentials&account_id=…` gives a bearer token valid `expires_in`
seconds, with no refresh token. The token is asked for again shortly before it expires,
and on demand after Zoom answers 401 code 124 (`invalidate`). Refreshes are single-flight:
one thread asks, the others wait for its answer instead of each asking.

The token lives only in this object: it is never logged, and repr() does not show it.
Each token is registered with the masker as it arrives, and the client credentials
(the secret, and the Basic header's Base64 of them) when the provider is made, so none
shows in any output should a server echo it back.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from ..masking import register_client_credentials, register_secret
from .config import ZoomClientConfig
from .errors import TransientZoomError, ZoomAuthError, ZoomUnreachable, scrub
from .transport import DeadlineExceeded, ResponseTooLarge

log = logging.getLogger(__name__)

#: Ask for a new token this long before the current one expires (at most), so a call
#: never leaves with a token that expires on the way.
REFRESH_MARGIN_SECONDS = 300.0
#: …but never more than this share of the token's lifetime (short-lived tokens in tests).
REFRESH_MARGIN_SHARE = 0.1
DEFAULT_EXPIRES_IN = 3600.0

_CREDENTIALS_HINT = "check ZOOM_CLIENT_ID / ZOOM_CLIENT_SECRET (the app's Client ID and Secret)"
_ACCOUNT_HINT = "check ZOOM_ACCOUNT_ID (the Account ID on the app's App Credentials page)"
_GRANT_HINT = (
    "ZOOM_CLIENT_ID must belong to a Server-to-Server OAuth app (grant type account_credentials)"
)
_DISABLED_HINT = (
    "the Server-to-Server OAuth app is disabled or deactivated; activate it in the Zoom "
    "App Marketplace (Manage → the app → Activation)"
)
_GENERIC_HINT = "check ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID and ZOOM_CLIENT_SECRET"
_UNREACHABLE_HINT = (
    "check the network route (DNS, proxy, firewall egress to zoom.us and api.zoom.us), "
    "ZOOM_OAUTH_URL and the machine's CA certificates"
)


class TokenProvider:
    """Hands out a valid access token; thread-safe, one refresh at a time."""

    def __init__(
        self,
        config: ZoomClientConfig,
        session: requests.Session,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        register_client_credentials(config.client_id, config.client_secret.reveal())
        self._session = session
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        #: Token requests sent (for tests and the run summary; never the token itself).
        self.requests_made = 0
        #: The scopes Zoom granted with the current token (space-separated in the answer).
        self.scopes: tuple[str, ...] = ()
        #: Zoom refused the credentials (or TLS failed): final for this provider.
        self._refused: ZoomAuthError | None = None

    def token(self) -> str:
        """A token that is valid for a while yet; asks Zoom for one if needed."""
        with self._lock:
            if self._refused is not None:
                raise _same_error(self._refused)
            if self._token is None or self._clock() >= self._refresh_at:
                try:
                    self._fetch_locked()
                except ZoomAuthError as exc:
                    # Wrong credentials stay wrong for the whole run. Asking again from
                    # every fetch thread would only repeat a failed sign-in at Zoom.
                    self._refused = exc
                    raise
            assert self._token is not None
            return self._token

    def invalidate(self, token: str) -> None:
        """Zoom rejected `token` (401 code 124): the next `token()` asks for a new one.

        Several threads holding the same rejected token may all call this; only the first
        has an effect, so the token is refreshed once, not once per thread.
        """
        with self._lock:
            if self._token is not None and token == self._token:
                self._token = None

    def secrets(self) -> tuple[str, ...]:
        """What must never appear in messages: for scrubbing text built from responses."""
        with self._lock:
            current = self._token or ""
        return current, self._config.client_secret.reveal()

    def _fetch_locked(self) -> None:
        config = self._config
        self.requests_made += 1
        try:
            response = self._session.post(
                config.oauth_url,
                data={"grant_type": "account_credentials", "account_id": config.account_id},
                auth=(config.client_id, config.client_secret.reveal()),
                headers={"Accept": "application/json"},
                timeout=config.timeout,
                verify=True,
                allow_redirects=False,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            cause = connection_failure(exc)
            if cause is not None:
                raise ZoomUnreachable(
                    f"cannot reach {config.oauth_url}: {cause}",
                    hint=_UNREACHABLE_HINT,
                ) from None
            if isinstance(exc, DeadlineExceeded):  # its text names the limit, nothing else
                raise TransientZoomError(f"token request failed: {exc}") from None
            raise TransientZoomError(f"token request failed: {type(exc).__name__}") from None
        except ResponseTooLarge as exc:
            raise TransientZoomError(f"token request failed: {exc}") from None

        tracking_id = response.headers.get("x-zm-trackingid")
        body = _json_object(response)
        if response.status_code == 200:
            token = body.get("access_token") if body else None
            if not isinstance(token, str) or not token:
                raise TransientZoomError(
                    "token endpoint answered 200 without an access_token",
                    status=200,
                    tracking_id=tracking_id,
                )
            register_secret(token)  # before anything can echo it back
            lifetime = _seconds(body.get("expires_in") if body else None)
            margin = min(REFRESH_MARGIN_SECONDS, lifetime * REFRESH_MARGIN_SHARE)
            self._token = token
            self._refresh_at = self._clock() + lifetime - margin
            scope = body.get("scope") if body else None
            self.scopes = tuple(scope.split()) if isinstance(scope, str) else ()
            log.debug("got an access token valid for %.0f s", lifetime)
            return

        secrets = (config.client_secret.reveal(),)
        reason = _reason(body, response.text, secrets)
        code = _code(body)
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise TransientZoomError(
                "token request failed",
                status=response.status_code,
                code=code,
                message=reason,
                tracking_id=tracking_id,
            )
        raise ZoomAuthError(
            "Zoom refused to issue an access token",
            status=response.status_code,
            code=code,
            message=reason,
            tracking_id=tracking_id,
            hint=_auth_hint(code, reason),
        )

    def __repr__(self) -> str:
        return f"TokenProvider(account_id={self._config.account_id!r}, token=***)"


def connection_failure(exc: BaseException) -> str | None:
    """Why no connection could be made at all, in a few words, or None when one was made
    (a reset or a read timeout after connecting is an ordinary transient failure).

    requests wraps urllib3, which wraps the socket error: the cause is found by walking
    the chain, never by parsing the message (which can carry pool internals).
    """
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (ssl.SSLError, requests.exceptions.SSLError)):
            return f"TLS verification failed ({type(current).__name__})"
        if isinstance(current, socket.gaierror):
            return "name resolution failed"
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, requests.exceptions.ConnectTimeout):
            return "no connection within the timeout"
        if isinstance(current, OSError) and current.errno in _UNREACHABLE_ERRNOS:
            return f"network unreachable ({errno.errorcode.get(current.errno or 0, '?')})"
        pending.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
        pending.extend(current.args)
    return None


_UNREACHABLE_ERRNOS = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL})


def _same_error(error: ZoomAuthError) -> ZoomAuthError:
    """A new exception saying what `error` says (one instance is not raised in several
    threads at once: each raise writes its traceback into it)."""
    return ZoomAuthError(
        error.summary,
        status=error.status,
        code=error.code,
        message=error.message,
        tracking_id=error.tracking_id,
        hint=error.hint,
    )


def _auth_hint(code: int | str | None, reason: str | None) -> str:
    text = f"{code or ''} {reason or ''}".lower()
    if code == 4717 or "disabled" in text or "deactivat" in text:
        return _DISABLED_HINT
    if code == 4705 or "grant" in text:
        return _GRANT_HINT
    if code in (4702, 4704, 4706) or "invalid_client" in text or "client" in text:
        return _CREDENTIALS_HINT
    if "account" in text:
        return _ACCOUNT_HINT
    return _GENERIC_HINT


def _json_object(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except (ValueError, LookupError):  # LookupError: an unknown charset
        return None
    return body if isinstance(body, dict) else None


def _code(body: dict[str, Any] | None) -> int | str | None:
    if not body:
        return None
    code = body.get("code", body.get("error"))
    return code if isinstance(code, (int, str)) else None


def _reason(body: dict[str, Any] | None, text: str, secrets: tuple[str, ...]) -> str | None:
    if body:
        # `error` (e.g. invalid_client) is already shown as the code.
        parts = [body.get(k) for k in ("reason", "message", "error_description")]
        words = [str(p) for p in parts if p not in (None, "")]
        if words:
            return scrub(": ".join(dict.fromkeys(words)), secrets)[:300]
    return scrub(text.strip(), secrets)[:200] or None


def _seconds(value: object) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return DEFAULT_EXPIRES_IN
