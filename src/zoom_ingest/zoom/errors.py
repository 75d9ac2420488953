"""Errors from Zoom, each with what the user should do about it.

Every error keeps what Zoom said (HTTP status, Zoom's `code` and `message`) and the
`x-zm-trackingid` header, which Zoom support asks for. No error ever carries an access
token or the client secret: messages are built from Zoom's response bodies only, and
every text an error shows or keeps (its message, Zoom's message, the tracking id) is
masked (masking.py) should a server or a proxy echo a credential back in any form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from ..masking import mask
from ..tables import UTC, format_time


class ZoomError(Exception):
    """A call to Zoom failed. str() is one line: what failed, what Zoom said, what to do."""

    def __init__(
        self,
        summary: str,
        *,
        status: int | None = None,
        code: int | str | None = None,
        message: str | None = None,
        tracking_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.summary = mask(summary)
        self.status = status
        self.code = mask(code) if isinstance(code, str) else code
        self.message = mask(message) if message is not None else None
        self.tracking_id = mask(tracking_id) if tracking_id is not None else None
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        text = self.summary
        said = []
        if self.status is not None:
            said.append(f"HTTP {self.status}")
        if self.code is not None:
            said.append(f"code {self.code}")
        if said or self.message:
            detail = ", ".join(said)
            if self.message:
                detail = f"{detail}: {self.message}" if detail else self.message
            text += f" (Zoom: {detail})"
        if self.hint:
            text += f"; {self.hint}"
        if self.tracking_id:
            text += f" [x-zm-trackingid {self.tracking_id}]"
        # A token registered after this error was made (and whatever is in the hint).
        return mask(text)

    def __str__(self) -> str:
        return self._render()


class ZoomAuthError(ZoomError):
    """The credentials are wrong or the app cannot get a token; the hint names the setting."""


class ZoomScopeError(ZoomError):
    """The Server-to-Server OAuth app lacks a scope the endpoint needs (Zoom code 4711)."""

    def __init__(
        self,
        summary: str,
        *,
        scopes: Iterable[str] = (),
        accepted_scopes: Iterable[str] = (),
        **details: object,
    ) -> None:
        #: The scopes Zoom said are missing (may be empty if its message did not list them).
        self.scopes = tuple(scopes)
        #: Scopes any one of which the endpoint accepts (granular first, then classic).
        self.accepted_scopes = tuple(accepted_scopes)
        details.setdefault("hint", self._scope_hint())
        super().__init__(summary, **details)  # type: ignore[arg-type]

    def _scope_hint(self) -> str:
        if self.scopes:
            wanted = f"add scope {' and '.join(self.scopes)}"
        elif self.accepted_scopes:
            wanted = f"add scope {self.accepted_scopes[0]}"
        else:
            wanted = "add the report scopes"
        hint = f"{wanted} to the Server-to-Server OAuth app (Zoom App Marketplace → Manage →"
        hint += " the app → Scopes), activate it again, then re-run"
        if len(self.accepted_scopes) > 1:
            hint += f" (accepted: {' or '.join(self.accepted_scopes)})"
        return hint


class ZoomPermissionError(ZoomError):
    """Zoom code 200 'No permission.': the user/role behind the app cannot read reports."""


class DailyLimitReached(ZoomError):
    """Zoom's daily request quota for the account is used up; nothing works until retry_at."""

    def __init__(self, summary: str, *, retry_at: datetime, **details: object) -> None:
        #: Aware UTC instant after which Zoom accepts requests again.
        self.retry_at = retry_at.astimezone(UTC)
        details.setdefault("hint", f"run again after {format_time(self.retry_at)}")
        super().__init__(summary, **details)  # type: ignore[arg-type]


class ZoomRequestError(ZoomError):
    """Zoom refused the request itself (other 4xx, e.g. code 300: bad date range or an
    expired next_page_token)."""


class ZoomUnavailable(ZoomError):
    """Zoom kept failing (5xx, resets, timeouts, garbage bodies) until retries ran out."""

    def __init__(self, summary: str, *, attempts: int, **details: object) -> None:
        self.attempts = attempts
        super().__init__(f"{summary} after {attempts} attempts", **details)  # type: ignore[arg-type]

    @classmethod
    def after(
        cls, summary: str, attempts: int, last: TransientZoomError, hint: str
    ) -> ZoomUnavailable:
        """Retries ran out: what Zoom said on the `last` attempt, and `hint`."""
        return cls(
            summary,
            attempts=attempts,
            status=last.status,
            code=last.code,
            message=last.message,
            tracking_id=last.tracking_id,
            hint=hint,
        )


class TransientZoomError(ZoomError):
    """One attempt failed in a way worth retrying. The client turns the last one into
    ZoomUnavailable when its retries run out; it is not raised to callers of get()."""


class IncompleteAnswer(ZoomError):
    """Zoom's answer for a window cannot be proven complete: a page without its records
    list, records out of order or outside the window, a page-token loop, or a limit hit
    (page count, response size, request deadline). The window's checkpoint stays; the
    run ends with exit code 7. `reason` is the short why (e.g. "records out of order")."""

    def __init__(self, summary: str, *, reason: str, **details: object) -> None:
        self.reason = reason
        super().__init__(summary, **details)  # type: ignore[arg-type]


class UnusableAnswer(TransientZoomError):
    """An attempt's answer could not be used as a page (a 200 body without a usable
    records list, or no whole answer within the request deadline): retried like any
    transient failure; when retries run out the client raises IncompleteAnswer."""


class ZoomUnreachable(TransientZoomError):
    """No connection could be made at all: the name did not resolve, the connection was
    refused or timed out, or TLS failed. Retried like any transient failure within a
    run; before a run starts (the first token request) it ends the run at once."""


class RateLimited(TransientZoomError):
    """A per-second (QPS) 429: everyone waits `retry_after` seconds, then the call is retried."""

    def __init__(self, summary: str, *, retry_after: float, **details: object) -> None:
        self.retry_after = retry_after
        super().__init__(summary, **details)  # type: ignore[arg-type]


_SCOPES_IN_MESSAGE = re.compile(r"scopes?\s*:?\s*\[([^\]]*)\]", re.IGNORECASE)


def scopes_from_message(message: str | None) -> tuple[str, ...]:
    """`Invalid access token, does not contain scopes:[a, b]` → ("a", "b")."""
    match = _SCOPES_IN_MESSAGE.search(message or "")
    if not match:
        return ()
    return tuple(s.strip(" '\"") for s in match[1].split(",") if s.strip(" '\""))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every registered secret masked in every form (masking.py), and each
    of `secrets` (however short) replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return mask(text)
