"""What the Zoom client needs to know, and nothing else: where Zoom is, the app's
credentials, and how hard to push (timeout, retries, requests per second, connections)
and how far a response may go (its whole deadline, its size).

The run's `Settings` builds one with `Settings.zoom_client_config()`; tests and tools
that only talk to Zoom can build one directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..setting_values import Secret

#: Zoom's production endpoints.
DEFAULT_API_URL = "https://api.zoom.us/v2"
DEFAULT_OAUTH_URL = "https://zoom.us/oauth/token"


@dataclass(frozen=True)
class ZoomClientConfig:
    account_id: str
    client_id: str
    client_secret: Secret = field(repr=False)
    api_url: str = DEFAULT_API_URL
    oauth_url: str = DEFAULT_OAUTH_URL
    #: Seconds to wait for one HTTP response.
    timeout: float = 30.0
    #: Attempts per request beyond the first, for 429/5xx/resets/timeouts.
    max_retries: int = 8
    #: The account's one client-side rate limit.
    requests_per_second: float = 10.0
    #: Fetch threads that share the client: one pooled connection each.
    connections: int = 4
    #: Seconds one request may take in all: connect, headers and the whole body.
    request_deadline: float = 120.0
    #: Bytes a response body may have, on the wire and decompressed.
    max_response_bytes: int = 16 * 1024 * 1024
