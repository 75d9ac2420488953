"""IP → country (zoom_ip_countries), the country detections, and how quiet the detections
stay on the simulator's background data."""

from __future__ import annotations

import ipaddress
import random
import socket
import tracemalloc
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from known_world import NOW, PARAMS, USERS, activity, clean_activity, t, write
from support.sim_settings import simulator_settings
from zoom_ingest import analytics, geo, scenarios
from zoom_ingest.options import detection_settings, detection_settings_from_env
from zoom_ingest.settings import DetectionSettings, SettingsError
from zoom_ingest.simulator.data import REGIONS
from zoom_ingest.tables import IP_COUNTRIES, UTC

JANE, OMAR, LI, SOFIA, KWAME = USERS
US_HOME = scenarios.DEFAULT_HOMES[JANE]
BR, AU, KP = (scenarios.ABROAD_ADDRESS[c] for c in ("BR", "AU", "KP"))


def named(
    warehouse: Path, name: str, params: dict[str, object] = PARAMS, now: datetime = NOW
) -> list[dict[str, Any]]:
    with analytics.LocalWarehouse(warehouse, now=now, params=params) as session:
        return session.named(name).to_pylist()


# --------------------------------------------------------------------------- lookup


def test_lookups_are_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the IP-to-country lookup tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    found = geo.countries([US_HOME, BR, AU, KP, "2003:e0:1::1", "10.1.2.3", "100.64.0.1", "x"])
    assert found == {
        US_HOME: "US",
        BR: "BR",
        AU: "AU",
        KP: "KP",
        "2003:e0:1::1": "DE",
        "10.1.2.3": None,  # private
        "100.64.0.1": None,  # shared address space
        "x": None,  # not an address
    }


def test_public_addresses_are_those_ipaddress_calls_global() -> None:
    """The IPv4 fast path (a range table) agrees with `ipaddress` everywhere it is cut,
    on random addresses, and on forms it must leave to `ipaddress` (or reject)."""
    rng = random.Random(3)
    addresses = [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(20_000)]
    for start in geo._IPV4_STARTS:
        for step in (-1, 0, 1):
            if 0 <= start + step < 2**32:
                addresses.append(str(ipaddress.IPv4Address(start + step)))
    addresses += ["01.2.3.4", "1.2.3", "256.1.1.1", "1.2.3.4\n", "1.2.3.4 ", "::1", "0.0.0.0"]
    addresses += ["255.255.255.255", "2003:e0:1::1", "::ffff:8.8.8.8", "\u0661.2.3.4", ""]

    def is_global(address: str) -> bool:
        try:
            return ipaddress.ip_address(address).is_global
        except ValueError:
            return False

    assert [geo._is_public(a) for a in addresses] == [is_global(a) for a in addresses]
    assert len(geo._IPV4_STARTS) > 10  # the special networks were found


def _is_global(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return False


def test_ipv6_fast_path_agrees_with_ipaddress() -> None:
    """The IPv6 range table agrees with `ipaddress` at and around every cut, in every
    written form, on random addresses of every size, on IPv4-mapped ones (left to
    `ipaddress`), and on random strings of hex digits and colons (mostly no address)."""
    rng = random.Random(5)
    addresses: list[str] = []
    for start in geo._IPV6_STARTS:
        for step in (-1, 0, 1, 2**40):
            if 0 <= start + step < 2**128:
                address = ipaddress.IPv6Address(start + step)
                addresses += [str(address), address.exploded, str(address).upper()]
    addresses += [
        str(ipaddress.IPv6Address(rng.getrandbits(128) >> rng.randrange(128)))
        for _ in range(20_000)
    ]
    addresses += [
        "".join(rng.choice("0:1:a:F:f:::09bc") for _ in range(rng.randint(2, 20)))
        for _ in range(20_000)
    ]
    addresses += [
        "::ffff:8.8.8.8",
        "::ffff:808:808",
        "::ffff:a00:1",
        "::ffff:10.0.0.1",
        "fe80::1%eth0",
    ]
    addresses += [
        "2003:e0:1::1%1",
        "1:2:3:4:5:6:7::",
        "::1:2:3:4:5:6:7",
        "12345::",
        ":::",
        "1::2::3",
    ]
    assert [geo._is_public(a) for a in addresses] == [_is_global(a) for a in addresses]
    assert len(geo._IPV6_STARTS) > 10  # the special networks were found


def test_run_addresses_hands_out_each_address_once_it_is_merged() -> None:
    seen = geo.RunAddresses()
    first = pa.table({"ip_address": ["8.8.8.8", None, "8.8.8.8", "1.1.1.1"]})
    assert sorted(seen.new(first)) == ["1.1.1.1", "8.8.8.8"]
    assert sorted(seen.new(first)) == ["1.1.1.1", "8.8.8.8"]  # not merged yet: again
    seen.remember(seen.new(first))
    second = pa.table({"ip_address": ["1.1.1.1", "9.9.9.9"]})
    assert seen.new(second) == ["9.9.9.9"]


def test_run_addresses_hold_no_python_object_per_address() -> None:
    """The addresses merged are kept as Arrow strings: kept as a set of Python strings,
    they lived for the whole run among the pages' short-lived objects, and the
    interpreter could give back none of the memory they sat in (issue 22)."""
    addresses = [f"10.{i >> 16}.{i >> 8 & 255}.{i & 255}" for i in range(50_000)]
    batch = pa.table({"ip_address": addresses})
    seen = geo.RunAddresses()
    tracemalloc.start()
    try:
        seen.remember(seen.new(batch))
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 2**20  # 50,000 Python strings: about 3.5 MiB
    assert seen.new(batch) == []
    assert seen.new(pa.table({"ip_address": ["10.9.9.9", addresses[7]]})) == ["10.9.9.9"]


def test_run_addresses_give_their_memory_back_past_their_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(geo.RunAddresses, "LIMIT", 3)
    seen = geo.RunAddresses()
    seen.remember(["8.8.8.8", "1.1.1.1"])
    seen.remember(["9.9.9.9", "4.4.4.4"])  # past the limit: only these are kept
    assert sorted(seen.new(pa.table({"ip_address": ["8.8.8.8", "9.9.9.9", "4.4.4.4"]}))) == [
        "8.8.8.8"
    ]


def test_rows_carry_the_database_version_and_lookup_time() -> None:
    at = datetime(2025, 3, 14, 12, tzinfo=UTC)
    table = geo.ip_country_rows([BR, BR, " ", None, "192.0.2.1"], now=at)
    assert table.schema == IP_COUNTRIES.schema
    version = geo.database_version()
    version = geo.database_version()
    assert table.to_pylist() == [  # one row per distinct address, sorted
        {"ip_address": "192.0.2.1", "country": None, "looked_up_at": at, "db_version": version},
        {"ip_address": BR, "country": "BR", "looked_up_at": at, "db_version": version},
    ]
    assert geo.database_version().startswith("iptocc 3.")


def test_every_simulated_region_block_is_registered_in_its_country() -> None:
    for country, _, blocks, prefix in REGIONS:
        addresses = [f"{a}.{b}.{c}.9" for a, b in blocks for c in range(256)]
        addresses.append(f"{prefix}:1::1")
        assert set(geo.countries(addresses).values()) == {country}, country


# --------------------------------------------------------------------------- detections


def travel_world(tmp_path: Path, extra: list[dict[str, str]]) -> Path:
    return write(tmp_path / "warehouse", clean_activity() + extra)


def test_new_country_alerts_once_after_the_learning_period(tmp_path: Path) -> None:
    extra = [
        activity(t("2025-03-12 12:00:00"), JANE, AU),
        activity(t("2025-03-12 15:00:00"), JANE, AU),  # the same country again: no alert
        activity(t("2025-03-13 12:00:00"), OMAR, "100.64.9.9"),  # no country: ignored
    ]
    warehouse = travel_world(tmp_path, extra)
    found = named(warehouse, "new_country_sign_in")
    assert [(r["target"], r["actor"], r["change"]) for r in found] == [
        (JANE, AU, "first sign-in from AU (before: US)")
    ]
    # Jane's history starts 2025-02-28: 12 days are not yet 14.
    strict = DetectionSettings(country_learning_days=14).sql_params()
    assert named(warehouse, "new_country_sign_in", strict) == []


def test_watched_countries_come_from_the_settings(tmp_path: Path) -> None:
    extra = [
        activity(t("2025-03-12 02:00:00"), LI, KP, client=("Browser", "-")),
        activity(t("2025-03-12 03:00:00"), SOFIA, BR, client=("Browser", "-")),
    ]
    warehouse = travel_world(tmp_path, extra)
    default = named(warehouse, "watched_country_sign_in")
    assert [(r["target"], r["change"]) for r in default] == [(LI, "sign-in from KP (Browser)")]
    brazil = detection_settings({"watched_countries": "br"}).sql_params()
    assert [r["target"] for r in named(warehouse, "watched_country_sign_in", brazil)] == [SOFIA]
    nothing = detection_settings({"watched_countries": "none"}).sql_params()
    assert named(warehouse, "watched_country_sign_in", nothing) == []


def test_impossible_travel_within_the_window_once_per_trip(tmp_path: Path) -> None:
    extra = [
        # Jane: home at 12:00, Brazil at 12:40, home again at 13:10 (the way back: no alert)
        activity(t("2025-03-12 12:00:00"), JANE, US_HOME),
        activity(t("2025-03-12 12:40:00"), JANE, BR),
        activity(t("2025-03-12 13:10:00"), JANE, US_HOME, kind="Sign out"),
        # Omar: home at 12:00, Australia 61 minutes later: possible
        activity(t("2025-03-12 12:00:00"), OMAR, scenarios.DEFAULT_HOMES[OMAR]),
        activity(t("2025-03-12 13:01:00"), OMAR, AU),
    ]
    warehouse = travel_world(tmp_path, extra)
    found = named(warehouse, "impossible_travel")
    assert [(r["time"], r["target"], r["change"]) for r in found] == [
        (t("2025-03-12 12:40:00"), JANE, f"US → BR within 40 minutes ({US_HOME} → {BR})")
    ]
    wider = detection_settings({"travel_window": "2h"}).sql_params()
    assert [r["target"] for r in named(warehouse, "impossible_travel", wider)] == [JANE, OMAR]


def test_country_detections_need_the_enrichment_table(tmp_path: Path) -> None:
    """Without zoom_ip_countries rows (a warehouse written by an older version) they are
    silent rather than wrong."""
    from zoom_ingest.engines.local import LocalEngine
    from zoom_ingest.normalise import Batch
    from zoom_ingest.tables import ACTIVITY_LOGS

    engine = LocalEngine(tmp_path / "warehouse")
    engine.ensure_tables()
    batch = Batch(ACTIVITY_LOGS)
    batch.add([*clean_activity(), activity(t("2025-03-12 12:40:00"), JANE, KP)])
    engine.merge_new(ACTIVITY_LOGS, batch.to_arrow())
    for name in ("new_country_sign_in", "watched_country_sign_in", "impossible_travel"):
        assert named(tmp_path / "warehouse", name) == [], name


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"watched_countries": "K1"}, "watched_countries"),
        ({"travel_window": "0m"}, "travel_window"),
        ({"travel_window": "soon"}, "travel_window"),
        ({"country_learning_days": "-1"}, "country_learning_days"),
        ({"country_learning_days": "two"}, "country_learning_days"),
    ],
)
def test_bad_detection_settings_name_the_setting(kwargs: dict[str, str], setting: str) -> None:
    with pytest.raises(SettingsError, match=setting):
        detection_settings(kwargs)


def test_detection_settings_come_from_the_environment() -> None:
    env = {
        "ZOOM_INGEST_WATCHED_COUNTRIES": "ru, by",
        "ZOOM_INGEST_TRAVEL_WINDOW": "3h",
        "ZOOM_INGEST_COUNTRY_LEARNING_DAYS": "30",
    }
    assert detection_settings_from_env(env).sql_params() == {
        "watched_countries": "RU,BY",
        "travel_minutes": 180,
        "learning_days": 30,
    }
    assert detection_settings_from_env({}) == DetectionSettings()


def test_with_params_rewrites_only_the_params_cte() -> None:
    sql = analytics.DETECTIONS["impossible_travel"].sql
    rewritten = analytics.with_params(sql, {"travel_minutes": 5, "unknown": 1})
    assert "5 AS travel_minutes" in rewritten and "60 AS travel_minutes" not in rewritten
    assert analytics.with_params(sql, {}) == analytics.with_params(sql, {"other": "x"})


# --------------------------------------------------------------------------- noise


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 21])
def test_background_data_raises_almost_no_alert(tmp_path: Path, seed: int) -> None:
    """30 days of the simulator's background (the demo's volume, no planted scenario): its
    role churn, setting changes, sign-ins from home, office and elsewhere in the country
    are what an account does every day, and the detections leave them alone."""
    from zoom_ingest.simulator import Simulator

    with Simulator(seed=seed, days=30, activity_per_day=400, operation_per_day=80, now=NOW) as sim:
        activity_records = sim.ground_truth("activity_logs")
        operation_records = sim.ground_truth("operation_logs")
    assert len(operation_records) > 30 * 60 and len(activity_records) > 30 * 350
    warehouse = write(tmp_path / "warehouse", activity_records, operation_records)
    with analytics.LocalWarehouse(warehouse, now=NOW, params=PARAMS) as session:
        alerts = session.detections().to_pylist()
        changes = session.named("setting_changes").num_rows
        countries = session.query("SELECT count(*) AS n FROM zoom_ip_countries").to_pylist()
    assert changes > 1000  # the background does change things
    assert countries[0]["n"] > 1000
    by_severity = Counter(a["severity"] for a in alerts)
    assert by_severity["high"] == 0, alerts
    assert sum(by_severity.values()) <= 3, Counter(a["detection"] for a in alerts)


def test_job_fills_the_enrichment_table_for_the_addresses_it_brings(tmp_path: Path) -> None:
    from zoom_ingest.engines.local import LocalEngine
    from zoom_ingest.job import run
    from zoom_ingest.simulator import Simulator

    warehouse = tmp_path / "warehouse"
    with Simulator(seed=5, days=3, activity_per_day=120, operation_per_day=0, now=NOW) as sim:
        truth = sim.ground_truth("activity_logs")
        settings = simulator_settings(
            sim, backfill_start=(NOW - timedelta(days=3)).date(), requests_per_second=200
        )
        run(settings, LocalEngine(warehouse), progress=False, now=NOW)
    stored = LocalEngine(warehouse).read_table(IP_COUNTRIES)
    addresses = {r["ip_address"] for r in truth if r.get("ip_address")}
    assert set(stored.column("ip_address").to_pylist()) == addresses
    expected = geo.countries(addresses)
    assert {r["ip_address"]: r["country"] for r in stored.to_pylist()} == expected
    assert set(stored.column("db_version").to_pylist()) == {geo.database_version()}
    assert sum(1 for c in expected.values() if c) > len(addresses) / 2
    assert isinstance(stored, pa.Table)


# --------------------------------------------------------------------------- planted vs found

#: A Monday (the latest business day before it is three days back) and a Wednesday.
PLANTING_NOWS = [
    datetime(2026, 11, 30, 9, 15, tzinfo=UTC),
    datetime(2026, 12, 2, 21, 40, tzinfo=UTC),
]


@pytest.mark.parametrize("now", PLANTING_NOWS, ids=["monday", "wednesday"])
@pytest.mark.parametrize("days", [15, 20])
def test_planted_alerts_are_exactly_those_the_default_detections_raise(
    tmp_path: Path, days: int, now: datetime
) -> None:
    """The standard scenarios, planted into a simulator and read from a backfill that
    starts at the first midnight of its data (as a release is rehearsed), with the
    detections' default settings: every alert the scenarios promise is raised, and no
    other. A new-country sign-in alerts only after 14 days of the user's history, so 15
    days of data promise none (they once promised three nobody could raise) and 20 days
    promise all three."""
    from zoom_ingest import detections
    from zoom_ingest.engines.local import LocalEngine
    from zoom_ingest.normalise import Batch
    from zoom_ingest.simulator import Simulator
    from zoom_ingest.tables import LOG_TABLES

    with Simulator(seed=23, days=days, activity_per_day=40, operation_per_day=10, now=now) as sim:
        backfill = sim.start_time.replace(hour=0, minute=0, second=0, microsecond=0)
        backfill += timedelta(days=1)
        planted = scenarios.plant_standard_scenarios(sim, history_start=backfill)
        engine = LocalEngine(tmp_path)
        engine.ensure_tables()
        for spec in LOG_TABLES.values():
            batch = Batch(spec)
            batch.add(sim.ground_truth(spec.name, backfill))
            rows = batch.to_arrow().sort_by("time")
            engine.merge_new(spec, rows)
            if spec is LOG_TABLES["activity_logs"]:
                engine.merge_new(IP_COUNTRIES, geo.ip_country_rows_for(rows))
    defaults = DetectionSettings().sql_params()
    detections.write_detections_local(tmp_path, now=now, params=defaults)
    stored = engine.read_table(detections.DETECTIONS_TABLE).to_pylist()
    expected = scenarios.alerts_of(planted)
    assert sorted(r["alert_id"] for r in stored) == sorted(a.alert_id for a in expected)
    promised = Counter(a.detection for a in expected)
    assert promised["watched_country_sign_in"] == promised["impossible_travel"] == 1
    assert promised["new_country_sign_in"] == (0 if days == 15 else 3)
