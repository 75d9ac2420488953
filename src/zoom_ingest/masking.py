"""Masks every form a secret takes in text that leaves the process: the one component that
logs, exceptions, the run summary, stderr and the bookkeeping tables go through.

A secret is registered once (the client secret when its `Secret` is made, the Basic
credentials and each access token by the token provider as it obtains them) and from
then on `mask()` replaces, wherever it occurs, the secret itself and the forms a server
or proxy may echo it in: URL-encoded (`%2B`, `+` for a space), JSON-escaped, Base64
(standard and URL-safe, with or without padding), and for the client credentials
`base64(client_id:client_secret)`, which a `Basic …` header carries. `one_line()` is
what a table stores: masked, control characters collapsed, bounded in length.

The registry is the process's: a secret registered by one run stays masked in every
output of the process, whichever object prints it. It keeps the most recent
`MAX_SECRETS` secrets (a long-lived process refreshes its token every hour).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections import OrderedDict
from urllib.parse import quote, quote_plus

__all__ = [
    "MASK",
    "MaskSecrets",
    "mask",
    "one_line",
    "register_client_credentials",
    "register_secret",
]

#: What a secret is replaced by.
MASK = "***"
#: Shorter values are not registered: masking every occurrence of two letters in every
#: message would make errors unreadable, and such a value protects nothing.
MIN_SECRET_LENGTH = 6
#: Secrets remembered (oldest forgotten first): the client secrets and tokens of many runs.
MAX_SECRETS = 512
#: The longest error text a table stores (characters, the ellipsis included).
MAX_STORED_ERROR = 500

_lock = threading.Lock()
_forms: OrderedDict[str, None] = OrderedDict()
_pattern: re.Pattern[str] | None = None
#: C0 and C1 control characters and DEL, and runs of whitespace: one space in a stored line.
_CONTROL_RUN = re.compile(r"[\x00-\x1f\x7f-\x9f\s]+")


def _forms_of(value: str) -> set[str]:
    """The texts `value` may show itself as, in URLs, JSON, headers and Base64."""
    raw = value.encode("utf-8")
    forms = {
        value,
        quote(value, safe=""),
        quote_plus(value, safe=""),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
    }
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        # Unpadded: the padded form, and a form whose `=` was URL-encoded, contain it.
        forms.add(encoded.decode("ascii").rstrip("="))
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def register_secret(value: str | None) -> None:
    """From now on, `value` and its encoded forms are masked in every output."""
    global _pattern
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        new = _forms_of(value)
        if all(form in _forms for form in new):
            for form in new:
                _forms.move_to_end(form)
            return
        for form in new:
            _forms[form] = None
            _forms.move_to_end(form)
        while len(_forms) > MAX_SECRETS * 8:  # several forms a secret
            _forms.popitem(last=False)
        # Longest first, so that a form containing another is masked whole.
        ordered = sorted(_forms, key=len, reverse=True)
        _pattern = re.compile("|".join(map(re.escape, ordered)))


def register_client_credentials(client_id: str, client_secret: str) -> None:
    """The client secret, and the `client_id:client_secret` pair a Basic header carries
    in Base64 (the pair's Base64 does not contain the secret's own)."""
    register_secret(client_secret)
    if client_secret:
        register_secret(f"{client_id}:{client_secret}")


def mask(text: str) -> str:
    """`text` with every registered secret, in every form, replaced by `MASK`."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def one_line(text: str | None, limit: int = MAX_STORED_ERROR) -> str | None:
    """Text as a table stores it: masked, every run of control characters and whitespace
    (newlines too) one space, at most `limit` characters (an ellipsis marks a cut).

    Masked before it is cut, so a cut never leaves the head of a secret behind."""
    if text is None:
        return None
    flat = _CONTROL_RUN.sub(" ", mask(text)).strip()
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return flat


class MaskSecrets(logging.Filter):
    """A log record's message, masked (with its arguments merged in). On every handler
    the entry points set up, so whatever a library logs is masked as well."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            # The traceback is formatted (and cached) here, so that it is masked too.
            formatter = logging.Formatter()
            record.exc_text = mask(formatter.formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask(record.exc_text)
        return True
