"""The Zoom source: S2S OAuth, the rate-limited HTTP client, the report stream registry,
the paging of a window (streams.py), the fetch threads that page a run's windows and say
what each brought (fetcher.py, in the order of schedule.py), and Zoom's rules (page
size, category filter, date offsets, retention: rules.py; its time format: times.py).

Nothing here imports settings.py or plan.py at load time (and settings.py imports nothing
from here: the job builds the client's configuration from the settings).

Its face is lazy (each name imported on first use), so that a module which needs only
Zoom's rules or time format (`zoom.rules`, `zoom.times`: the simulator, normalise.py)
loads neither requests nor tenacity with them.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: Each public name → the module of this package that defines it.
_HOMES = {
    "TokenProvider": "auth",
    "CallCounters": "client",
    "ZoomClient": "client",
    "ZoomClientConfig": "config",
    "DailyLimitReached": "errors",
    "ZoomAuthError": "errors",
    "ZoomError": "errors",
    "ZoomPermissionError": "errors",
    "ZoomRequestError": "errors",
    "ZoomScopeError": "errors",
    "ZoomUnavailable": "errors",
    "ZoomUnreachable": "errors",
    "RateLimiter": "ratelimit",
    "STREAMS_BY_NAME": "streams",
    "Page": "streams",
    "Stream": "streams",
    "fetch_pages": "streams",
    "stream_names": "streams",
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{home}", __name__), name)
