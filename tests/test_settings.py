"""Settings: every bad value is refused with a message naming the setting."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from zoom_ingest.options import checked_settings
from zoom_ingest.settings import (
    Secret,
    Settings,
    SettingsError,
    check_url,
    parse_duration,
)
from zoom_ingest.zoom.rules import CATEGORY_TYPES


def make(**changes: object) -> Settings:
    values: dict[str, object] = {
        "account_id": "acct",
        "client_id": "cid",
        "client_secret": Secret("SECRET-VALUE-123"),
    }
    values.update(changes)
    # As every entry point makes them: the option table also checks Zoom's own values
    # (category types), which settings.py does not know.
    return checked_settings(**values)


@pytest.mark.parametrize(
    ("changes", "setting", "hint"),
    [
        ({"category_type": "users"}, "category_type", "user_settings"),
        ({"streams": ("activity_logs", "meetings")}, "streams", "operation_logs"),
        ({"streams": ()}, "streams", "activity_logs"),
        ({"backfill_start": date.today() + timedelta(days=3)}, "backfill_start", "future"),
        ({"api_url": "http://api.zoom.us/v2"}, "api_url", "loopback"),
        ({"oauth_url": "ftp://zoom.us/oauth/token"}, "oauth_url", "http"),
        ({"client_secret": Secret("  ")}, "client_secret", "ZOOM_CLIENT_SECRET"),
        ({"account_id": ""}, "account_id", "ZOOM_ACCOUNT_ID"),
        ({"client_id": " "}, "client_id", "ZOOM_CLIENT_ID"),
        ({"mode": "full"}, "mode", "reconcile"),
        ({"window_days": 31}, "window_days", "28"),
        ({"requests_per_second": 0}, "requests_per_second", "0.1"),
        ({"lookback": timedelta(days=40)}, "lookback", "31 days"),
        ({"concurrency": 0}, "concurrency", "1"),
    ],
)
def test_bad_values_name_the_setting_and_what_is_allowed(changes, setting, hint):
    with pytest.raises(SettingsError) as info:
        make(**changes)
    assert info.value.setting == setting
    message = str(info.value)
    assert setting in message and hint in message
    assert "\n" not in message


def test_every_documented_category_type_is_accepted():
    assert len(CATEGORY_TYPES) == 12
    for value in CATEGORY_TYPES:
        assert make(category_type=value).category_type == value


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/v2",
        "http://localhost/v2",
        "http://[::1]:9/v2",
        "https://api.zoom.us/v2",
    ],
)
def test_http_is_allowed_only_to_loopback(url):
    check_url("api_url", url)


def test_secret_never_shows_itself():
    settings = make()
    for text in (
        repr(settings),
        str(settings),
        repr(settings.client_secret),
        f"{settings.client_secret}",
    ):
        assert "SECRET-VALUE-123" not in text
    assert settings.client_secret.reveal() == "SECRET-VALUE-123"


@pytest.mark.parametrize(
    ("text", "minutes"), [("90m", 90), ("2h", 120), ("1d", 1440), ("45", 45), ("30s", 0.5)]
)
def test_durations(text, minutes):
    assert parse_duration("lookback", text) == timedelta(minutes=minutes)


def test_bad_duration():
    with pytest.raises(SettingsError, match="lookback"):
        parse_duration("lookback", "two hours")


def test_the_client_configuration_is_the_settings_with_no_default_of_its_own():
    import dataclasses

    from zoom_ingest.job import zoom_client_config
    from zoom_ingest.zoom.config import ZoomClientConfig

    fields = dataclasses.fields(ZoomClientConfig)
    assert all(f.default is dataclasses.MISSING for f in fields)  # Settings declares them
    assert all(f.default_factory is dataclasses.MISSING for f in fields)
    settings = make(timeout=7.5, max_retries=2, requests_per_second=33, concurrency=9)
    config = zoom_client_config(settings)
    for f in fields:
        expected = (
            settings.effective_concurrency if f.name == "connections" else getattr(settings, f.name)
        )
        assert getattr(config, f.name) == expected, f.name
    assert config.connections == 9 and config.requests_per_second == 33
