"""What the Zoom client needs to know, and nothing else: where Zoom is, the app's
credentials, and how hard to push (timeout, retries, requests per second, connections)
and how far a response may go (its whole deadline, its size).

Every field is given: the defaults are the run's settings' (settings.py declares each
once), and the job builds one from them (`job.zoom_client_config(settings)`); tests and
tools that only talk to Zoom build one from a Settings the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..setting_values import Secret


@dataclass(frozen=True)
class ZoomClientConfig:
    account_id: str
    client_id: str
    client_secret: Secret = field(repr=False)
    api_url: str
    oauth_url: str
    #: Seconds to wait for one HTTP response.
    timeout: float
    #: Attempts per request beyond the first, for 429/5xx/resets/timeouts.
    max_retries: int
    #: The account's one client-side rate limit.
    requests_per_second: float
    #: Fetch threads that share the client: one pooled connection each.
    connections: int
    #: Seconds one request may take in all: connect, headers and the whole body.
    request_deadline: float
    #: Bytes a response body may have, on the wire and decompressed.
    max_response_bytes: int
