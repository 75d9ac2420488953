"""The Zoom source: S2S OAuth, the rate-limited HTTP client, and the two report streams."""

from .auth import TokenProvider
from .client import CallCounters, ZoomClient
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
from .streams import STREAMS_BY_NAME, Page, Stream, fetch_pages

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
    "ZoomError",
    "ZoomPermissionError",
    "ZoomRequestError",
    "ZoomScopeError",
    "ZoomUnavailable",
    "ZoomUnreachable",
    "fetch_pages",
]
