"""The values settings are built from, shared by settings.py and the Zoom client: the error
for a bad one (SettingsError), a credential that never shows itself (Secret), and where a
credential may be sent (check_url: HTTPS, or plain http to loopback only).

A module of its own so that the zoom package can use them without importing settings.py
(the run's settings and the Zoom client know nothing of each other; the job joins them).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from .masking import register_secret

__all__ = ["Secret", "SettingsError", "check_url", "is_loopback"]


class SettingsError(ValueError):
    """A setting has a value that is not allowed. str() is one line for the user."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"invalid setting {setting}: {message}")
        self.setting = setting


class Secret:
    """A credential that never shows itself in repr, str, logs or tracebacks; once made,
    its value is masked in every output of the process (masking.py)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def check_url(setting: str, url: str) -> None:
    """HTTPS, or plain http to a loopback address only (the local simulator)."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SettingsError(setting, f"{url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise SettingsError(
            setting, f"{url!r}: plain http is allowed only to loopback (127.0.0.1, ::1, localhost)"
        )


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def catalog_schema(setting: str, text: str, catalog: str) -> tuple[str, str] | None:
    """A `catalog.schema` setting, or `schema` in `catalog`; None when empty."""
    text = text.strip()
    if not text:
        return None
    parts = [part.strip() for part in text.split(".")]
    if len(parts) == 1:
        parts.insert(0, catalog)
    if len(parts) != 2 or not all(parts):
        raise SettingsError(setting, f"{text!r} is not catalog.schema or schema")
    return parts[0], parts[1]
