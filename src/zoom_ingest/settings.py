"""One validated settings object for a run, from CLI flags, job parameters or env vars.

Plain values: each field's default is declared here once, and the option table
(options.py) reads every one of them from flags, job parameters, widgets and env vars.
Every bad value stops the run before any API call with a SettingsError whose message
names the setting and what is allowed (the CLI turns it into exit code 2). This module
knows no Zoom client: the job builds the client's configuration from a Settings
(job.zoom_client_config), and options.py checks the values Zoom itself defines (the
operation logs' category types).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

# Secret and SettingsError are part of this module's face: callers import them from here.
from .setting_values import Secret, SettingsError, check_url
from .tables import LOG_TABLES, UTC

#: Zoom's production endpoints.
DEFAULT_API_URL = "https://api.zoom.us/v2"
DEFAULT_OAUTH_URL = "https://zoom.us/oauth/token"


def stream_names() -> tuple[str, ...]:
    """The streams a run may ingest: one per log table (tables.LOG_TABLES, the registry
    that zoom/streams.py's STREAMS_BY_NAME follows), read now, not at import."""
    return tuple(LOG_TABLES)


#: Every registered stream: what a run ingests unless told otherwise.
STREAMS = stream_names()
#: The env vars of the Zoom app's credentials, declared here once: the option table
#: reads them (options.py), and a missing credential's error names its variable.
CREDENTIAL_ENV_VARS = {
    "account_id": "ZOOM_ACCOUNT_ID",
    "client_id": "ZOOM_CLIENT_ID",
    "client_secret": "ZOOM_CLIENT_SECRET",
}
MODES = ("incremental", "reconcile")
#: Where a local run writes (`zoom-ingest run --engine`): delta-rs, or a local SparkSession
#: with Delta Lake (the Databricks code path). Both write `<warehouse>/<table>`.
ENGINES = ("local", "spark")
DEFAULT_ENGINE = "local"


@dataclass(frozen=True)
class Settings:
    account_id: str
    client_id: str
    client_secret: Secret = field(repr=False)
    api_url: str = DEFAULT_API_URL
    oauth_url: str = DEFAULT_OAUTH_URL
    #: Default: every registered stream (a log table each) when the settings are made.
    streams: tuple[str, ...] = field(default_factory=stream_names)
    category_type: str = "all"
    #: First run only: ingest every record at or after this date's midnight UTC.
    #: None: everything Zoom still holds (its 6-month retention).
    backfill_start: date | None = None
    #: Later runs re-read from cursor − lookback (late-arriving records).
    lookback: timedelta = timedelta(hours=1)
    mode: str = "incremental"
    #: reconcile mode: re-read this many full UTC days before today, without early stop.
    reconcile_days: int = 3
    #: One client-side limiter per Zoom account (Heavy APIs: 10/s Pro, 40/s Business+).
    requests_per_second: float = 10.0
    #: Windows fetched at once; None → derived from requests_per_second.
    concurrency: int | None = None
    #: Backfill windows are cut into this many days each (1–28: always within one month).
    window_days: int = 1
    #: Rows buffered per table before a merge; bounds memory, not the backfill size.
    #: None → the engine's own (`Engine.batch_rows`): a merge's memory follows its batch,
    #: and what a merge costs besides differs by engine.
    batch_rows: int | None = None
    #: Seconds to wait for one HTTP response.
    timeout: float = 30.0
    #: Attempts per request beyond the first, for 429/5xx/resets/timeouts.
    max_retries: int = 8
    #: Seconds one request may take in all: connect, headers and the whole body (a body
    #: trickled within `timeout` per read is still cut off here).
    request_deadline: float = 120.0
    #: Bytes a response body may have, on the wire and once decompressed (a page of 300
    #: records is about 100 kB).
    max_response_bytes: int = 16 * 1024 * 1024
    #: Pages one window may take (300 records each) before it counts as a loop: 6M
    #: records, a day's window of the busiest account many times over, so a server that
    #: keeps sending tokens cannot page us for hours (at 10 requests/s this many pages
    #: take about 35 minutes).
    max_pages_per_window: int = 20_000
    #: How long a run waits for the Zoom account's lease while another run holds it,
    #: before it ends busy (exit 4). 0: at once.
    lease_wait: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def effective_concurrency(self) -> int:
        # One paging chain runs ~3 calls/s at 300 ms per call; keep enough chains in
        # flight to fill the rate limit, plus slack for slow pages.
        if self.concurrency is not None:
            return self.concurrency
        return max(4, min(48, int(self.requests_per_second * 0.6) + 2))

    def with_changes(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return (
            f"Settings(account_id={self.account_id!r}, client_id={self.client_id!r}, "
            f"client_secret=***, api_url={self.api_url!r}, streams={self.streams!r}, "
            f"mode={self.mode!r}, backfill_start={self.backfill_start})"
        )


def validate(s: Settings) -> None:
    _require_text("account_id", s.account_id)
    _require_text("client_id", s.client_id)
    if not isinstance(s.client_secret, Secret) or not s.client_secret.reveal().strip():
        raise SettingsError("client_secret", _empty("client_secret"))
    check_url("api_url", s.api_url)
    check_url("oauth_url", s.oauth_url)
    # The registry as it is now, not as it was at import (tables.LOG_TABLES).
    allowed = stream_names()
    if not s.streams:
        raise SettingsError("streams", f"at least one of {', '.join(allowed)}")
    for stream in s.streams:
        if stream not in allowed:
            raise SettingsError(
                "streams", f"unknown stream {stream!r}; allowed: {', '.join(allowed)}"
            )
    # category_type is one of Zoom's list (zoom/rules.py): options.checked_settings, where
    # settings are read, checks it; this module knows nothing of Zoom.
    if s.backfill_start is not None and s.backfill_start > datetime.now(UTC).date():
        raise SettingsError(
            "backfill_start", f"{s.backfill_start} is in the future; use a past UTC date"
        )
    if s.mode not in MODES:
        raise SettingsError("mode", f"{s.mode!r} is not one of {', '.join(MODES)}")
    if not timedelta(0) <= s.lookback <= timedelta(days=31):
        raise SettingsError("lookback", "must be between 0 and 31 days (e.g. 90m, 2h, 1d)")
    _check_range("reconcile_days", s.reconcile_days, 1, 180)
    _check_range("requests_per_second", s.requests_per_second, 0.1, 1000)
    if s.concurrency is not None:
        _check_range("concurrency", s.concurrency, 1, 256)
    _check_range("window_days", s.window_days, 1, 28)
    if s.batch_rows is not None:
        _check_range("batch_rows", s.batch_rows, 1, 10_000_000)
    _check_range("timeout", s.timeout, 0.1, 600)
    _check_range("max_retries", s.max_retries, 0, 100)
    _check_range("request_deadline", s.request_deadline, 1, 3600)
    _check_range("max_response_bytes", s.max_response_bytes, 65_536, 1 << 31)
    _check_range("max_pages_per_window", s.max_pages_per_window, 1, 10_000_000)
    if not timedelta(0) <= s.lease_wait <= timedelta(hours=6):
        raise SettingsError("lease_wait", "must be between 0 and 6 hours (e.g. 0s, 10m, 1h)")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "": 60}


def parse_duration(setting: str, text: str) -> timedelta:
    """`90m`, `2h`, `1d`, `30s`; a bare number is minutes."""
    match = _DURATION.match(text or "")
    if not match:
        raise SettingsError(setting, f"{text!r} is not a duration like 90m, 2h or 1d")
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2].lower()])


def parse_date(setting: str, text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise SettingsError(setting, f"{text!r} is not a date YYYY-MM-DD") from None


def parse_streams(text: str) -> tuple[str, ...]:
    streams = tuple(s.strip() for s in text.split(",") if s.strip())
    if not streams:
        raise SettingsError("streams", f"empty; allowed: {', '.join(stream_names())}")
    return streams


def _require_text(setting: str, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(setting, _empty(setting))


def _empty(credential: str) -> str:
    env = CREDENTIAL_ENV_VARS[credential]
    return f"empty; set {env} or --{credential.replace('_', '-')}"


def _check_range(setting: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise SettingsError(setting, f"{value!r} is outside {_number(low)}–{_number(high)}")


def _number(value: float) -> str:
    return f"{value:,}" if float(value).is_integer() else f"{value:g}"


# --------------------------------------------------------------------------- detections

#: Countries under comprehensive US sanctions: few companies have staff signing in there.
DEFAULT_WATCHED_COUNTRIES = ("CU", "IR", "KP", "SY")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class DetectionSettings:
    """The tunable values of the detections (sql/detections), one declaration each.

    Each field is a value of some detection's `params` CTE; `sql_params()` maps them to
    those names and analytics.with_params() writes them into the SQL, on DuckDB and on
    Databricks alike. They are read from text like every setting, through the option
    table (options.detection_settings: `--watched-countries`, `--travel-window`,
    `--country-learning-days` of the detections entry point; options.detection_settings_from_env:
    `ZOOM_INGEST_<FIELD>`).
    """

    #: watched_country_sign_in: ISO 3166-1 alpha-2 codes whose sign-ins always alert.
    watched_countries: tuple[str, ...] = DEFAULT_WATCHED_COUNTRIES
    #: impossible_travel: two countries closer together than this are impossible travel.
    travel_window: timedelta = timedelta(hours=1)
    #: new_country_sign_in: days of a user's history before a new country alerts.
    country_learning_days: int = 14

    def __post_init__(self) -> None:
        for code in self.watched_countries:
            if not isinstance(code, str) or not _COUNTRY.match(code):
                raise SettingsError(
                    "watched_countries",
                    f"{code!r} is not an ISO 3166-1 alpha-2 code in capitals (e.g. KP, IR)",
                )
        if not timedelta(minutes=1) <= self.travel_window <= timedelta(days=2):
            raise SettingsError("travel_window", "must be between 1 minute and 2 days (e.g. 90m)")
        _check_range("country_learning_days", self.country_learning_days, 0, 365)

    def sql_params(self) -> dict[str, object]:
        """params-CTE column → value, for analytics.with_params()."""
        return {
            "watched_countries": ",".join(self.watched_countries),
            "travel_minutes": int(self.travel_window.total_seconds() // 60),
            "learning_days": self.country_learning_days,
        }
