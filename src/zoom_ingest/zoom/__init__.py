"""The Zoom source: S2S OAuth, the rate-limited HTTP client, the report stream registry,
the paging of a window (streams.py), the fetch threads that page a run's windows and say
what each brought (fetcher.py, in the order of schedule.py), and Zoom's rules (page
size, category filter, date offsets, retention: rules.py; its time format: times.py).

Nothing here imports settings.py or plan.py at load time (and settings.py imports nothing
from here: the job builds the client's configuration from the settings).
"""

from .auth import TokenProvider
from .client import CallCounters, ZoomClient
from .config import ZoomClientConfig
from .errors import (
    DailyLimitReached,
    ZoomAuthError,
    ZoomError,
    ZoomPermissionError,
    ZoomRequestError,
    ZoomScopeError,
    ZoomUnavailable,
    ZoomUnreachable,
)
from .ratelimit import RateLimiter
from .streams import STREAMS_BY_NAME, Page, Stream, fetch_pages, stream_names

__all__ = [
    "STREAMS_BY_NAME",
    "CallCounters",
    "DailyLimitReached",
    "Page",
    "RateLimiter",
    "Stream",
    "TokenProvider",
    "ZoomAuthError",
    "ZoomClient",
    "ZoomClientConfig",
    "ZoomError",
    "ZoomPermissionError",
    "ZoomRequestError",
    "ZoomScopeError",
    "ZoomUnavailable",
    "ZoomUnreachable",
    "fetch_pages",
    "stream_names",
]
