"""OAuth: Zoom's S2S token endpoint, its Basic credentials, and the access tokens it issues.

The token endpoint checks the app's client id and secret (HTTP Basic), the
``account_credentials`` grant and the account id, and answers as Zoom does
(``invalid_client``, ``unsupported_grant_type``, ``invalid_request``). Bearer tokens
carry scopes and an expiry; several are valid at once, and all can be revoked. A call
with an unknown, expired or revoked token gets 401 code 124; one whose token lacks
the endpoint's scope gets 400 code 4711.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import random
import secrets
import string
import threading
import time
from dataclasses import dataclass

from .http import ApiError, Reply, json_reply, single_values

ACTIVITY_SCOPE = "report:read:user_activities:admin"
OPERATION_SCOPE = "report:read:operation_logs:admin"
CLASSIC_SCOPE = "report:read:admin"
DEFAULT_SCOPES = (ACTIVITY_SCOPE, OPERATION_SCOPE)


@dataclass(frozen=True)
class Credentials:
    account_id: str
    client_id: str
    client_secret: str

    @classmethod
    def from_seed(cls, seed: int) -> Credentials:
        """Simulator-only fakes, stable per seed so a restarted simulator takes the same."""
        rng = random.Random(f"{seed}/credentials")
        alphabet = string.ascii_letters + string.digits

        def text(n: int) -> str:
            return "".join(rng.choice(alphabet) for _ in range(n))

        return cls(account_id=text(22), client_id=text(22), client_secret=text(32))


class AccessTokens:
    """Issued bearer tokens: several valid at once, each with its scopes and expiry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[frozenset[str], float]] = {}
        #: Every token ever issued, in order (expired and revoked ones too), so tests can
        #: search logs, errors and tables for any of them.
        self._issued: list[str] = []

    def issue(self, scopes: frozenset[str], ttl: float) -> str:
        token = "sim." + secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
            self._tokens[token] = (scopes, now + ttl)
            self._issued.append(token)
        return token

    def issued(self) -> list[str]:
        with self._lock:
            return list(self._issued)

    def scopes(self, token: str | None) -> frozenset[str] | None:
        """The token's scopes, or None when it is unknown, expired or revoked."""
        if not token:
            return None
        with self._lock:
            found = self._tokens.get(token)
        if found is None or found[1] <= time.monotonic():
            return None
        return found[0]

    def revoke_all(self) -> None:
        with self._lock:
            self._tokens.clear()

    def authorise(self, authorization: str | None) -> frozenset[str]:
        """The scopes of the call's bearer token; 401 code 124 when it has none valid."""
        scopes = self.scopes(_bearer(authorization))
        if scopes is None:
            raise ApiError(401, 124, "Invalid access token.")
        return scopes


def require_scope(scopes: frozenset[str], scope: str) -> None:
    """400 code 4711 unless `scopes` grant `scope` (or the classic catch-all scope)."""
    if scope not in scopes and CLASSIC_SCOPE not in scopes:
        raise ApiError(400, 4711, f"Invalid access token, does not contain scopes:[{scope}].")


def grant(
    method: str,
    query: dict[str, str],
    body: bytes,
    authorization: str | None,
    *,
    credentials: Credentials,
    scopes: frozenset[str],
    ttl: float,
    tokens: AccessTokens,
    api_url: str,
) -> Reply:
    """The token endpoint's answer to one request (without Zoom's tracking header)."""
    if method != "POST":
        return json_reply(405, {"reason": "Method Not Allowed", "error": "invalid_request"})
    client_id, client_secret = _basic_credentials(authorization)
    if not (
        hmac.compare_digest(client_id.encode(), credentials.client_id.encode())
        and hmac.compare_digest(client_secret.encode(), credentials.client_secret.encode())
    ):
        return json_reply(
            400, {"reason": "Invalid client_id or client_secret", "error": "invalid_client"}
        )
    form = {**query, **single_values(body.decode("utf-8", "replace"))}
    if form.get("grant_type") != "account_credentials":
        return json_reply(
            400, {"reason": "Unsupported grant type", "error": "unsupported_grant_type"}
        )
    if not form.get("account_id"):
        return json_reply(
            400,
            {"reason": "Invalid request : Missing account_id.", "error": "invalid_request"},
        )
    if form["account_id"] != credentials.account_id:
        return json_reply(
            400,
            {"reason": "Invalid request : Account does not exist.", "error": "invalid_request"},
        )
    token = tokens.issue(scopes, ttl)
    return json_reply(
        200,
        {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": int(ttl),
            "scope": " ".join(sorted(scopes)),
            "api_url": api_url,
        },
    )


def _bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _basic_credentials(authorization: str | None) -> tuple[str, str]:
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    client_id, _, client_secret = decoded.partition(":")
    return client_id, client_secret
