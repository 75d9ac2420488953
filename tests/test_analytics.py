"""The analytics queries and the detections, on data whose answers are known.

- A hand-built "clean world" (five users signing in and out every day, benign admin
  work during business hours) gives the exact rows of every analytics query, and not a
  single alert.
- The same world with `scenarios.standard_scenarios` planted gives exactly the planted
  alerts, and the planted new-address sign-ins.
- Small datasets pin down each query's edge cases.
- The simulator → job → tables → queries path runs once, end to end.
- Spark's own parser checks every query; Spark runs the detections on the planted
  world and must agree with DuckDB row for row.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from known_world import (
    ADMIN,
    CLEAN_OPERATIONS,
    DAYS,
    FIRST_DAY,
    HOME,
    JANE,
    KWAME,
    LI,
    NOW,
    OMAR,
    PARAMS,
    SOFIA,
    USERS,
    activity,
    clean_activity,
    op_id,
    operation,
    t,
    write,
)
from support.sim_settings import simulator_settings
from zoom_ingest import analytics, detections, scenarios
from zoom_ingest.analytics import ALERT_SCHEMA, DETECTIONS, QUERIES, Query, QueryError
from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.tables import RUNS, UTC, format_time


def rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()


@pytest.fixture(scope="module")
def clean_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    warehouse = write(
        tmp_path_factory.mktemp("clean") / "warehouse", clean_activity(), CLEAN_OPERATIONS
    )
    engine = LocalEngine(warehouse)
    engine.save_checkpoint("acct", "activity_logs", t("2025-03-14 11:00:00"), "run-2")
    engine.save_checkpoint("acct", "operation_logs", t("2025-03-14 11:00:00"), "run-2")
    runs = [
        {
            "run_id": run_id,
            "account_id": "acct",
            "stream": stream,
            "started_at": started,
            "status": status,
        }
        for run_id, started, status in (
            ("run-1", t("2025-03-14 10:00:00"), "succeeded"),
            ("run-2", t("2025-03-14 11:00:00"), "failed"),
        )
        for stream in ("activity_logs", "operation_logs")
    ]
    engine.append(RUNS, pa.Table.from_pylist(runs, schema=RUNS.schema))
    return warehouse


@pytest.fixture(scope="module")
def planted() -> list[scenarios.Scenario]:
    return scenarios.standard_scenarios(NOW, admin=ADMIN, users=USERS)


@pytest.fixture(scope="module")
def planted_world(
    tmp_path_factory: pytest.TempPathFactory, planted: list[scenarios.Scenario]
) -> Path:
    return write(
        tmp_path_factory.mktemp("planted") / "warehouse",
        clean_activity() + scenarios.records_of(planted, "activity_logs"),
        CLEAN_OPERATIONS + scenarios.records_of(planted, "operation_logs"),
    )


def named(warehouse: Path, name: str, now: datetime = NOW) -> list[dict[str, Any]]:
    with analytics.LocalWarehouse(warehouse, now=now, params=PARAMS) as session:
        return rows(session.named(name))


# --------------------------------------------------------------------------- the files


def test_every_query_file_has_a_header_that_says_what_it_answers() -> None:
    assert len(QUERIES) >= 12 and len(DETECTIONS) >= 8
    for query in [*QUERIES.values(), *DETECTIONS.values()]:
        assert query.header.get("title"), query.name
        assert len(query.description) > 40, query.name
    for query in DETECTIONS.values():
        assert query.severity in analytics.SEVERITIES, query.name
        assert "alert_id" in query.header, f"{query.name}: document the alert_id recipe"
    assert set(QUERIES).isdisjoint(DETECTIONS)


def test_views_are_created_after_the_views_they_read() -> None:
    """A view is checked against what it reads when it is created (DuckDB, Spark)."""
    from zoom_ingest.queries import VIEWS, in_creation_order

    def view(name: str, sql: str) -> Query:
        return Query(name=name, kind="views", sql=sql)

    views = {
        "a_reads_b": view("a_reads_b", "SELECT * FROM b_base"),
        "b_base": view("b_base", "SELECT 1 AS one"),
        "c_reads_a": view("c_reads_a", "SELECT * FROM a_reads_b"),
        "d_alone": view("d_alone", "SELECT 2 AS two"),
    }
    assert list(in_creation_order(views)) == ["b_base", "d_alone", "a_reads_b", "c_reads_a"]
    assert list(VIEWS) == ["operation_changes", "changed_settings"]
    with pytest.raises(ValueError, match="read each other: x, y"):
        in_creation_order({"x": view("x", "SELECT * FROM y"), "y": view("y", "SELECT * FROM x")})


def test_headers_join_continuation_lines() -> None:
    header = analytics.parse_header(
        "-- title: Something\n-- answers: first line\n--   second line\n-- severity: low\n"
        "SELECT 1\n-- x: no"
    )
    assert header == {"title": "Something", "answers": "first line second line", "severity": "low"}


def test_detections_return_the_alert_columns(clean_world: Path) -> None:
    with analytics.LocalWarehouse(clean_world, now=NOW) as session:
        for name in DETECTIONS:
            assert session.named(name).schema.names == ALERT_SCHEMA.names, name


# --------------------------------------------------------------------------- clean world


def test_daily_sign_ins(clean_world: Path) -> None:
    expected = [
        {
            "day": day,
            "sign_ins": 5,
            "sign_outs": 5 if day < NOW.date() else 0,
            "users_signing_in": 5,
        }
        for day in DAYS
    ]
    assert named(clean_world, "daily_sign_ins") == expected


def test_daily_active_users(clean_world: Path) -> None:
    expected = [
        {"day": day, "active_users": 5, "first_seen_users": 5 if day == FIRST_DAY else 0}
        for day in DAYS
    ]
    assert named(clean_world, "daily_active_users") == expected


def test_client_versions_flag_older_versions_of_the_same_client(clean_world: Path) -> None:
    def row(client: str, version: str, user: str, minute: int, latest: str | None, outdated: bool):
        last = t(f"2025-03-14 09:0{minute}:00")
        return {
            "client_type": client,
            "version": version,
            "users": 1,
            "sign_ins": 15,
            "last_seen": last,
            "latest_version": latest,
            "is_outdated": outdated,
        }

    assert named(clean_world, "client_versions") == [
        row("Browser", "-", LI, 2, None, False),
        row("Mac", "6.2.5 (41233)", JANE, 0, "6.2.5 (41233)", False),
        row("Windows", "6.2.5 (41233)", SOFIA, 3, "6.2.5 (41233)", False),
        row("Windows", "6.1.0 (30010)", OMAR, 1, "6.2.5 (41233)", True),
        row("iOS", "6.0.3 (20000)", KWAME, 4, "6.0.3 (20000)", False),
    ]


def test_operations_by_category(clean_world: Path) -> None:
    counts = Counter((r["category_type"], r["action"]) for r in CLEAN_OPERATIONS)
    times: dict[tuple[str, str], list[datetime]] = {}
    for r in CLEAN_OPERATIONS:
        times.setdefault((r["category_type"], r["action"]), []).append(
            t(r["time"][:-1].replace("T", " "))
        )
    expected = sorted(
        (
            {
                "category_type": category,
                "action": action,
                "operator": ADMIN,
                "operations": n,
                "first_time": min(times[(category, action)]),
                "last_time": max(times[(category, action)]),
            }
            for (category, action), n in counts.items()
        ),
        key=lambda r: (-r["operations"], r["category_type"], r["action"]),
    )
    result = named(clean_world, "operations_by_category")
    assert result == expected
    assert result[0] == {
        "category_type": "Account",
        "action": "Update",
        "operator": ADMIN,
        "operations": 4,
        "first_time": t("2025-03-04 11:00:00"),
        "last_time": t("2025-03-11 15:00:00"),
    }


def test_setting_changes_split_setting_old_and_new_value(clean_world: Path) -> None:
    by_time = {r["time"]: r for r in CLEAN_OPERATIONS}

    def row(
        at: str, section: str, target: str, setting: str, old: Any, new: str, change_no: int = 1
    ) -> dict[str, Any]:
        record = by_time[format_time(t(at))]
        return {
            "time": t(at),
            "operator": ADMIN,
            "category_type": record["category_type"],
            "action": record["action"],
            "section": section,
            "target": target,
            "setting": setting,
            "old_value": old,
            "new_value": new,
            "change_no": change_no,
            "lw_id": op_id(record),
        }

    two_factor = "Sign in with Two-Factor Authentication"
    sign_out = "Automatically sign users out after a specified time"
    assert named(clean_world, "setting_changes") == [
        row(
            "2025-03-13 09:00:00",
            "Zoom Rooms: Settings > Meeting",
            "Boardroom 3 (Berlin HQ)",
            "Screen sharing",
            "Off",
            "On",
        ),
        row("2025-03-06 16:00:00", "Security", "account", sign_out, "Off", "On"),
        row("2025-03-06 16:00:00", "Security", "account", two_factor, "Off", "On", 2),
        row(
            "2025-03-06 09:30:00",
            "Update User Settings: Meeting > Security",
            SOFIA,
            "Waiting room",
            "Off",
            "On",
        ),
        row(
            "2025-03-05 14:20:00",
            "Update Role",
            "Auditor",
            "Privileges",
            "[Users:View, Groups:View]",
            "[Users:View, Dashboard:View]",
        ),
        row("2025-03-05 14:00:00", "Change Role", OMAR, "Role", "Admin", "Member"),
        row(
            "2025-03-04 11:30:00",
            "Account Settings",
            "account",
            "Sign in with two-factor authentication",
            "Off",
            "On",
        ),
        row(
            "2025-03-04 11:00:00",
            "Security",
            "account",
            "Require a passcode when scheduling new meetings",
            "Off",
            "On",
        ),
        row("2025-03-03 10:05:00", "Update User", KWAME, "User Type", "Basic", "Licensed"),
    ]


def test_role_changes(clean_world: Path) -> None:
    by_time = {r["time"]: r for r in CLEAN_OPERATIONS}

    def row(
        at: str,
        change: str,
        target: str,
        old: Any,
        new: Any,
        added: Any = None,
        removed: Any = None,
    ):
        return {
            "time": t(at),
            "operator": ADMIN,
            "change": change,
            "target": target,
            "role_from": old,
            "role_to": new,
            "privileges_added": added,
            "privileges_removed": removed,
            "lw_id": op_id(by_time[format_time(t(at))]),
        }

    assert named(clean_world, "role_changes") == [
        row(
            "2025-03-05 14:20:00",
            "role privileges changed",
            "Auditor",
            "Auditor",
            "Auditor",
            "Dashboard:View",
            "Groups:View",
        ),
        row("2025-03-05 14:10:00", "added to role", LI, None, "Member"),
        row("2025-03-05 14:00:00", "role changed", OMAR, "Admin", "Member"),
    ]


def test_users_added_and_removed(clean_world: Path) -> None:
    deleted, added = CLEAN_OPERATIONS[11], CLEAN_OPERATIONS[0]
    assert named(clean_world, "users_added_removed") == [
        {
            "time": t("2025-03-10 10:00:00"),
            "operator": ADMIN,
            "change": "removed",
            "user_email": "old.user@acme.example",
            "operation_detail": deleted["operation_detail"],
            "lw_id": op_id(deleted),
        },
        {
            "time": t("2025-03-03 10:00:00"),
            "operator": ADMIN,
            "change": "added",
            "user_email": KWAME,
            "operation_detail": added["operation_detail"],
            "lw_id": op_id(added),
        },
    ]


def test_recording_deletions_in_both_detail_formats(clean_world: Path) -> None:
    new_format, old_format = CLEAN_OPERATIONS[15], CLEAN_OPERATIONS[9]
    assert named(clean_world, "recording_deletions") == [
        {
            "time": t("2025-03-12 13:00:00"),
            "operator": ADMIN,
            "action": "Delete",
            "meeting_id": "305 4083 5835",
            "topic": "週次定例",
            "operation_detail": new_format["operation_detail"],
            "lw_id": op_id(new_format),
        },
        {
            "time": t("2025-03-07 13:00:00"),
            "operator": ADMIN,
            "action": "Delete",
            "meeting_id": "123 456 789",
            "topic": "Weekly sync",
            "operation_detail": old_format["operation_detail"],
            "lw_id": op_id(old_format),
        },
    ]


def test_data_freshness_reports_latest_records_cursor_and_last_run(clean_world: Path) -> None:
    cursor = t("2025-03-14 11:00:00")
    assert named(clean_world, "data_freshness") == [
        {
            "table_name": "activity_logs",
            "total_records": 14 * 10 + 5,
            "latest_time": t("2025-03-14 09:04:00"),
            "hours_since_latest": 2.93,  # 2 h 56 min
            "records_last_24h": 10,  # five sign-outs on the 13th, five sign-ins today
            "checkpoint_cursor": cursor,
            "last_run_status": "failed",
            "last_run_started_at": cursor,
        },
        {
            "table_name": "operation_logs",
            "total_records": len(CLEAN_OPERATIONS),
            "latest_time": t("2025-03-13 09:00:00"),
            "hours_since_latest": 27.0,
            "records_last_24h": 0,
            "checkpoint_cursor": cursor,
            "last_run_status": "failed",
            "last_run_started_at": cursor,
        },
    ]


def test_daily_record_counts_cover_every_day(clean_world: Path) -> None:
    operations = Counter(r["time"][:10] for r in CLEAN_OPERATIONS)
    assert named(clean_world, "daily_record_counts") == [
        {
            "day": day,
            "activity_logs": 10 if day < NOW.date() else 5,
            "operation_logs": operations.get(day.isoformat(), 0),
        }
        for day in DAYS
    ]


def test_clean_world_has_no_new_addresses_and_no_address_hopping(clean_world: Path) -> None:
    assert named(clean_world, "new_ip_sign_ins") == []
    assert named(clean_world, "users_many_ips") == []


def test_every_detection_is_silent_on_clean_data(clean_world: Path) -> None:
    for name in DETECTIONS:
        assert named(clean_world, name) == [], name


# --------------------------------------------------------------------------- planted world


def test_planted_scenarios_raise_exactly_their_alerts(
    planted_world: Path, planted: list[scenarios.Scenario]
) -> None:
    expected = [a.as_row() for a in scenarios.alerts_of(planted)]
    assert {a["detection"] for a in expected} == set(DETECTIONS) - {"activity_gap"}
    found = rows(analytics.run_detections(planted_world, now=NOW, params=PARAMS))
    assert sorted(found, key=lambda r: (r["time"], r["alert_id"])) == expected
    for row in found:
        assert row["severity"] == DETECTIONS[row["detection"]].severity


def test_alert_ids_follow_the_documented_recipe(
    planted_world: Path, planted: list[scenarios.Scenario]
) -> None:
    promotion = next(s for s in planted if s.name == "privileged_role_granted_change_role")
    record = promotion.records[0]
    recipe = hashlib.sha256(f"privileged_role_granted|{op_id(record)}".encode()).hexdigest()
    [row] = [r for r in named(planted_world, "privileged_role_granted") if r["target"] == JANE]
    assert row["alert_id"] == recipe


def test_planted_new_address_sign_ins(planted_world: Path) -> None:
    burst = t("2025-03-13 03:30:00")

    def row(at: datetime, email: str, ip: str, client: str, version: str, prior: int):
        return {
            "time": at,
            "email": email,
            "ip_address": ip,
            "client_type": client,
            "version": version,
            "prior_ips": prior,
        }

    abroad = scenarios.ABROAD_ADDRESS
    expected = [
        row(t("2025-03-13 13:14:15"), JANE, scenarios.NEW_ADDRESS, "Mac", "6.2.5 (41233)", 2),
        # home, the burst address, then Australia / Brazil
        row(t("2025-03-13 12:40:00"), SOFIA, abroad["AU"], "Mac", "6.2.5 (41233)", 2),
        row(t("2025-03-13 12:25:00"), KWAME, abroad["BR"], "Browser", "-", 2),
    ] + [
        # Li signed in from North Korea before the burst: the burst address is her third
        row(
            burst + timedelta(minutes=4 * i),
            user,
            scenarios.BURST_ADDRESS,
            "Browser",
            "-",
            2 if user == LI else 1,
        )
        for i, user in reversed(list(enumerate(USERS)))
    ]
    expected.append(row(t("2025-03-13 02:10:00"), LI, abroad["KP"], "Browser", "-", 1))
    assert named(planted_world, "new_ip_sign_ins") == expected


def test_detections_look_back_30_days(planted_world: Path) -> None:
    later = NOW + timedelta(days=40)
    for name in set(DETECTIONS) - {"activity_gap"}:
        assert named(planted_world, name, now=later) == [], name


def test_an_ongoing_gap_alerts_once_no_record_came_for_24_hours(clean_world: Path) -> None:
    last = t("2025-03-14 09:04:00")
    assert named(clean_world, "activity_gap", now=last + timedelta(hours=23, minutes=59)) == []
    later = last + timedelta(hours=30, minutes=10)
    expected = scenarios.activity_gap_alert(last, later, ongoing=True)
    assert named(clean_world, "activity_gap", now=later) == [expected.as_row()]
    assert expected.change == (
        "no activity records for 30 hours after 2025-03-14 09:04:00 UTC (none since)"
    )


def test_a_hole_in_the_data_alerts_with_the_same_id_as_while_it_was_ongoing(tmp_path: Path) -> None:
    records = [r for r in clean_activity() if not ("2025-03-10T12" < r["time"] < "2025-03-11T17")]
    warehouse = write(tmp_path / "warehouse", records)
    before, after = t("2025-03-10 09:04:00"), t("2025-03-11 17:00:00")
    expected = scenarios.activity_gap_alert(before, after, ongoing=False)
    assert named(warehouse, "activity_gap") == [expected.as_row()]
    assert "(next at 2025-03-11 17:00:00 UTC)" in expected.change
    during = named(warehouse, "activity_gap", now=t("2025-03-11 12:00:00"))
    assert [r["alert_id"] for r in during] == [expected.alert_id]


# --------------------------------------------------------------------------- edge cases


def test_role_grants_alert_only_on_promotions_into_privileged_roles(tmp_path: Path) -> None:
    day = "2025-03-12 10:00:"
    details = [
        f"Change Role  - {JANE}: from Admin to Member",  # demotion
        f"Change Role  - {OMAR}: from Member to Auditor",  # ordinary → ordinary
        f"Change Role  - {LI}: from Admin to Owner",  # privileged → privileged
        f"Change Role  - {SOFIA}: from Co-Owner to Admin",  # lateral
        f"Change Role  - {JANE}: from Member to Co-Owner",  # a promotion
        f"Update User {OMAR}  - User Role: from Member to Admin",  # the other shape
        f"Update User {LI}  - User Role: from Billing Admin to Owner",  # lateral
        f"Update User {SOFIA}  - Job Title: set to Admin - User Role: from Auditor to Helpdesk+",
        f"Assign Role  - Billing Admin: add members {KWAME}",
        f"Assign Role  - Member: add members {JANE}",
        f"Update User {JANE}  - User Type: from Basic to Licensed",
    ]
    ops = [
        operation(t(f"{day}{i:02d}"), "Role" if "Assign Role" in d else "User", "Update", d)
        for i, d in enumerate(details)
    ]
    # A custom role given admin-level privileges, then a promotion into it.
    ops.append(
        operation(
            t("2025-03-12 11:00:00"),
            "Role",
            "Update",
            "Update Role Helpdesk+  - Privileges: from [Users:View] to [Users:View, Users:Edit]",
        )
    )
    ops.append(
        operation(
            t("2025-03-12 11:05:00"),
            "User",
            "Update",
            f"Change Role  - {KWAME}: from Member to Helpdesk+",
        )
    )
    ops.append(  # older than 30 days
        operation(
            t("2025-02-01 10:00:00"),
            "User",
            "Update",
            f"Change Role  - {KWAME}: from Member to Admin",
        )
    )
    found = named(write(tmp_path / "warehouse", operation_records=ops), "privileged_role_granted")
    assert [(r["target"], r["change"]) for r in found] == [
        (JANE, "role: Member → Co-Owner"),
        (OMAR, "role: Member → Admin"),
        (SOFIA, "role: Auditor → Helpdesk+"),
        (KWAME, "role: (none) → Billing Admin"),
        (KWAME, "role: Member → Helpdesk+"),
    ]


TWO_FACTOR = "Sign in with Two-Factor Authentication"
AUTO_SIGN_OUT = "Automatically sign users out after a specified time"


@pytest.mark.parametrize(
    ("category", "detail", "expected"),
    [
        # --- sign_in_security_disabled: alone, first or later in a multi-change detail
        ("Account", f"Security  - {TWO_FACTOR}: from On to Off", {"sign_in_security_disabled"}),
        (
            "Account",
            f"Security  - {TWO_FACTOR}: from On to Off - {AUTO_SIGN_OUT}: from On to Off",
            {"sign_in_security_disabled", "auto_sign_out_disabled"},
        ),
        (
            "Account",
            f"Security  - Waiting room: from On to Off - {TWO_FACTOR}: from On to Off",
            {"sign_in_security_disabled"},
        ),
        (
            "Account",
            "Sign-In Password Requirement  - Have at least 1 letter: from On to Off - "
            "Have at least 1 number: from On to Off - Minimum password length: from 8 to 12",
            {"sign_in_security_disabled"},
        ),
        (
            "Account",
            "Sign-In Password Requirement  - Minimum password length: from 12 to 6",
            {"sign_in_security_disabled"},
        ),
        (
            "Account",
            "Security  - Lock account after failed sign-in attempts: from On to Off",
            {"sign_in_security_disabled"},
        ),
        (
            "Account",
            "Account Settings: Sign in with two-factor authentication: from On to Off",
            {"sign_in_security_disabled"},
        ),
        (
            "User Settings",
            f"Update User Settings - {JANE}: Security: Two Factor Authentication: "
            "from Enabled to Disabled",
            {"sign_in_security_disabled"},
        ),
        (
            "User Group",
            f"Edit Group Sales EMEA  - {TWO_FACTOR}: from On to Off",
            {"sign_in_security_disabled"},
        ),
        (
            "Account",
            "Account Settings - Security: Require users to sign in with a password: from On to Off",
            {"sign_in_security_disabled"},
        ),
        # --- auto_sign_out_disabled
        (
            "Account",
            "Account Settings - Security: Idle session timeout: from 15 minutes to Never",
            {"auto_sign_out_disabled"},
        ),
        # --- meeting_passcode_disabled at account, group and user level
        (
            "User Group",
            "Edit Group Sales EMEA  - Personal Meeting ID (PMI) Passcode: from On to Off",
            {"meeting_passcode_disabled"},
        ),
        (
            "User Settings",
            f"Edit User {JANE}  - Require a passcode when scheduling new meetings: from On to Off",
            {"meeting_passcode_disabled"},
        ),
        (
            "Account",
            "Meeting  - Waiting room: from Off to On - Webinar passcode: from On to Off",
            {"meeting_passcode_disabled"},
        ),
        (
            "User Settings",
            f"Update User Settings - {JANE}: Require a passcode for Personal Meeting ID (PMI): "
            "from On to Off",
            {"meeting_passcode_disabled"},
        ),
        (
            "Account",
            "Account Settings - Meeting > Security: Require that all meetings are secured with "
            "one security option: from On to Off",
            {"meeting_passcode_disabled"},
        ),
        (
            "Account",
            "Account Settings: Require passcode for participants joining by phone: from On to Off",
            {"meeting_passcode_disabled"},
        ),
        # --- sign_in_methods_changed
        (
            "Account",
            "Account Settings - Security: Sign in with SSO: from On to Off",
            {"sign_in_methods_changed"},
        ),
        (
            "Account",
            "Security  - Allow users to sign in with Apple: from Off to On",
            {"sign_in_methods_changed"},
        ),
        # --- sso_configuration_changed
        (
            "Account",
            "Single Sign-On  - Sign-out page URL: from https://a.example/out to https://b.example/out",
            {"sso_configuration_changed"},
        ),
        (
            "Account",
            "SSO  - SAML Response Mapping: set to Admin for group it-all",
            {"sso_configuration_changed"},
        ),
        # --- billing_plan_changed
        ("Billing", "Update billing contact information", {"billing_plan_changed"}),
        (
            "Account",
            "Plan  - Subscription: from Monthly to Annual",
            {"billing_plan_changed"},
        ),
        # --- off_hours is by time (see below); these are not alerts: turned on, unrelated,
        # or a name that only looks similar
        ("Account", f"Security  - {TWO_FACTOR}: from Off to On", set()),
        (
            "Account",
            "Sign-In Password Requirement  - Have at least 1 letter: from Off to On - "
            "Minimum password length: from 8 to 12",
            set(),
        ),
        (
            "Account",
            "Security  - Require a passcode when scheduling new meetings: from Off to On",
            set(),
        ),
        ("Account", "Meeting  - Lessons mode: from On to Off", set()),
        (
            "Account",
            "Meeting  - Embed passcode in invite link for one-click join: from On to Off",
            set(),
        ),
        ("Account", "Security  - Only allow sign in from: 198.51.100.0/24", set()),
        (
            "User",
            f"Add User {JANE}  - User Type: Basic - Department: Finance",
            set(),
        ),
        ("User", f"Edit User {JANE}  - Job Title: set to Contractor", set()),
        ("User", f"Update User {JANE}  - User Type: from Basic to Licensed", set()),
        ("User", f"Change Role  - {JANE}: from Member to Auditor", set()),
        ("User", f"Sign in with SSO  - {JANE}", set()),
        ("Billing", "Download Invoice  - Invoice Number: INV-2025-0042", set()),
    ],
)
def test_setting_detections_match_the_settings_they_name(
    tmp_path: Path, category: str, detail: str, expected: set[str]
) -> None:
    action = "Download" if detail.startswith("Download") else "Update"
    record = operation(t("2025-03-12 10:00:00"), category, action, detail)
    warehouse = write(tmp_path / "warehouse", operation_records=[record])
    found = {
        r["detection"] for r in rows(analytics.run_detections(warehouse, now=NOW, params=PARAMS))
    }
    assert found == expected


def test_a_multi_change_detail_alerts_once_with_every_qualifying_change(tmp_path: Path) -> None:
    detail = (
        "Sign-In Password Requirement  - Have at least 1 letter: from On to Off - "
        "Have at least 1 number: from On to Off - Minimum password length: from 8 to 12"
    )
    record = operation(t("2025-03-12 10:00:00"), "Account", "Update", detail)
    [alert] = named(
        write(tmp_path / "warehouse", operation_records=[record]), "sign_in_security_disabled"
    )
    assert (alert["target"], alert["change"]) == (
        "account",
        "Have at least 1 letter: On → Off; Have at least 1 number: On → Off",
    )


def test_sign_in_methods_say_which_were_turned_on_and_which_off(tmp_path: Path) -> None:
    detail = (
        "Security  - Allow users to sign in with Google: from Off to On - "
        "Sign in with SSO: from On to Off - Allow users to sign in with Apple: from Off to On"
    )
    record = operation(t("2025-03-12 10:00:00"), "Account", "Update", detail)
    [alert] = named(
        write(tmp_path / "warehouse", operation_records=[record]), "sign_in_methods_changed"
    )
    assert alert["change"] == (
        "turned on: Allow users to sign in with Apple, Allow users to sign in with Google; "
        "turned off: Sign in with SSO"
    )


def test_a_bulk_license_change_needs_ten_users_within_an_hour(tmp_path: Path) -> None:
    users = [f"user{i:02d}@acme.example" for i in range(12)]

    def changes(start: str, people: list[str], every: int) -> list[dict[str, str]]:
        return [
            operation(
                t(start) + timedelta(minutes=every * i),
                "User",
                "Update",
                f"Update User {user}  - User Type: from Licensed to Basic",
            )
            for i, user in enumerate(people)
        ]

    ops = (
        changes("2025-03-10 10:00:00", users[:9], 1)  # nine: below the threshold
        + changes("2025-03-11 10:00:00", users[:10], 7)  # ten, but over 63 minutes
        + changes("2025-03-12 10:00:00", users, 3)  # twelve within 33 minutes
        + [  # users added with a type are not changes
            operation(
                t("2025-03-13 10:00:00") + timedelta(minutes=i),
                "User",
                "Add",
                f"Add User {user}  - User Type: Basic",
            )
            for i, user in enumerate(users)
        ]
    )
    found = named(write(tmp_path / "warehouse", operation_records=ops), "license_type_bulk_change")
    assert [(r["time"], r["target"]) for r in found] == [
        (t("2025-03-12 10:00:00"), ", ".join(sorted(users)))
    ]
    assert found[0]["change"].startswith("12 users had their license type changed within 60")


def test_off_hours_covers_account_changes_in_every_section(tmp_path: Path) -> None:
    saturday = t("2025-03-08 23:00:00")
    details = [
        ("Account", f"Security  - {TWO_FACTOR}: from Off to On"),
        ("Account", "Meeting  - Waiting room: from On to Off - Chat: from Off to On"),
        ("Account", "Account Settings - Recording: Cloud recording: from On to Off"),
        ("User Group", "Edit Group Sales EMEA  - Chat: from On to Off"),  # not account level
        ("User", f"Edit User {JANE}  - Job Title: set to Contractor"),  # not account level
    ]
    ops = [
        operation(saturday + timedelta(minutes=i), category, "Update", detail)
        for i, (category, detail) in enumerate(details)
    ]
    found = named(write(tmp_path / "warehouse", operation_records=ops), "off_hours_account_change")
    assert [r["change"] for r in found] == [
        f"{TWO_FACTOR}: Off → On (at Sat 23:00 UTC)",
        "Chat: Off → On; Waiting room: On → Off (at Sat 23:01 UTC)",
        "Cloud recording: On → Off (at Sat 23:02 UTC)",
    ]


@pytest.mark.parametrize(
    ("when", "alerts"),
    [
        ("2025-03-12 07:59:59", True),  # Wednesday, before 08:00
        ("2025-03-12 08:00:00", False),
        ("2025-03-12 17:59:59", False),
        ("2025-03-12 18:00:00", True),
        ("2025-03-08 12:00:00", True),  # Saturday noon
        ("2025-03-09 09:30:00", True),  # Sunday morning
    ],
)
def test_off_hours_means_outside_monday_to_friday_eight_to_six(
    tmp_path: Path, when: str, alerts: bool
) -> None:
    detail = "Account Settings - Meeting > Security: Waiting room: from On to Off"
    record = operation(t(when), "Account", "Update", detail)
    warehouse = write(tmp_path / "warehouse", operation_records=[record])
    found = named(warehouse, "off_hours_account_change")
    assert len(found) == (1 if alerts else 0)
    if alerts:
        local = t(when)
        assert found[0]["change"] == f"Waiting room: On → Off (at {local:%a %H:%M} UTC)"


def test_ip_bursts_need_five_users_within_an_hour_from_an_unknown_address(tmp_path: Path) -> None:
    base = clean_activity()
    office = "203.0.113.7"  # everybody's office address, used every day
    office_days = [
        activity(datetime(d.year, d.month, d.day, 12, i, tzinfo=UTC), user, office)
        for d in DAYS[:-1]
        for i, user in enumerate(USERS)
    ]
    four = [
        activity(t("2025-03-12 02:00:00") + timedelta(minutes=i), u, "100.64.0.4")
        for i, u in enumerate(USERS[:4])
    ]
    slow = [
        activity(t("2025-03-11 02:00:00") + timedelta(minutes=16 * i), u, "100.64.0.5")
        for i, u in enumerate(USERS)
    ]
    fast = [
        activity(t("2025-03-10 02:00:00") + timedelta(minutes=14 * i), u, "100.64.0.6")
        for i, u in enumerate(USERS)
    ]
    warehouse = write(tmp_path / "warehouse", base + office_days + four + slow + fast)
    found = named(warehouse, "ip_sign_in_burst")
    assert [(r["actor"], r["time"]) for r in found] == [("100.64.0.6", t("2025-03-10 02:00:00"))]
    assert found[0]["target"] == ", ".join(sorted(USERS))


def test_users_many_ips_merges_overlapping_windows_into_one_episode(tmp_path: Path) -> None:
    records = [
        activity(t("2025-03-12 09:00:00"), JANE, "100.64.1.1"),
        activity(t("2025-03-12 09:20:00"), JANE, "100.64.1.2"),
        activity(t("2025-03-12 09:40:00"), JANE, "100.64.1.3"),
        activity(t("2025-03-12 10:10:00"), JANE, "100.64.1.4"),
        activity(t("2025-03-12 10:15:00"), JANE, "100.64.1.1", kind="Sign out"),
        # Omar: three addresses, but over more than an hour.
        activity(t("2025-03-12 09:00:00"), OMAR, "100.64.2.1"),
        activity(t("2025-03-12 09:40:00"), OMAR, "100.64.2.2"),
        activity(t("2025-03-12 10:01:00"), OMAR, "100.64.2.3"),
        # Li: a second episode later.
        activity(t("2025-03-13 20:00:00"), LI, "100.64.3.1"),
        activity(t("2025-03-13 20:01:00"), LI, "100.64.3.2"),
        activity(t("2025-03-13 20:02:00"), LI, "100.64.3.3"),
    ]
    found = named(write(tmp_path / "warehouse", records), "users_many_ips")
    assert found == [
        {
            "email": LI,
            "first_sign_in": t("2025-03-13 20:00:00"),
            "last_sign_in": t("2025-03-13 20:02:00"),
            "ip_addresses": 3,
            "sign_ins": 3,
            "addresses": "100.64.3.1, 100.64.3.2, 100.64.3.3",
        },
        {
            "email": JANE,
            "first_sign_in": t("2025-03-12 09:00:00"),
            "last_sign_in": t("2025-03-12 10:10:00"),
            "ip_addresses": 4,
            "sign_ins": 4,
            "addresses": "100.64.1.1, 100.64.1.2, 100.64.1.3, 100.64.1.4",
        },
    ]


def test_daily_record_counts_show_empty_days_as_zero(tmp_path: Path) -> None:
    records = [
        activity(t("2025-03-10 10:00:00"), JANE, HOME[JANE]),
        activity(t("2025-03-12 10:00:00"), JANE, HOME[JANE]),
    ]
    ops = [operation(t("2025-03-12 11:00:00"), "User", "Add", f"Add User  - {OMAR}")]
    found = named(write(tmp_path / "warehouse", records, ops), "daily_record_counts")
    assert [(r["day"].isoformat(), r["activity_logs"], r["operation_logs"]) for r in found] == [
        ("2025-03-10", 1, 0),
        ("2025-03-11", 0, 0),
        ("2025-03-12", 1, 1),
        ("2025-03-13", 0, 0),
        ("2025-03-14", 0, 0),
    ]


def test_queries_on_an_empty_warehouse_return_no_rows(tmp_path: Path) -> None:
    warehouse = write(tmp_path / "warehouse")
    with analytics.LocalWarehouse(warehouse, now=NOW) as session:
        for name in [*QUERIES, *DETECTIONS]:
            result = session.named(name)
            if name == "data_freshness":
                assert [r["total_records"] for r in rows(result)] == [0, 0]
            else:
                assert result.num_rows == 0, name


# --------------------------------------------------------------------------- run_query


def test_run_query_runs_databricks_sql_with_qualified_names(clean_world: Path) -> None:
    sql = """
        SELECT email, count_if(type = 'Sign in') AS sign_ins,
               date_format(max(time), 'yyyy-MM-dd HH:mm') AS last
        FROM main.zoom.activity_logs
        WHERE email RLIKE '^(jane|omar)[.]'
        GROUP BY email ORDER BY email
    """
    assert rows(analytics.run_query(clean_world, sql)) == [
        {"email": JANE, "sign_ins": 15, "last": "2025-03-14 09:00"},
        {"email": OMAR, "sign_ins": 15, "last": "2025-03-14 09:01"},
    ]


def test_run_query_pins_the_current_time(clean_world: Path) -> None:
    sql = "SELECT current_timestamp() AS now, current_date() AS today"
    assert rows(analytics.run_query(clean_world, sql, now=NOW)) == [
        {"now": NOW, "today": NOW.date()}
    ]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("DELETE FROM activity_logs", "only queries"),
        ("SELECT 1; SELECT 2", "one query"),
        ("SELECT FROM WHERE (", "cannot parse"),
        ("SELECT nope FROM activity_logs", "the query failed"),
    ],
)
def test_run_query_explains_what_it_cannot_run(clean_world: Path, sql: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        analytics.run_query(clean_world, sql)


def test_run_query_needs_a_warehouse(tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="no warehouse"):
        analytics.run_query(tmp_path / "missing", "SELECT 1")


def test_run_named_rejects_unknown_names(clean_world: Path) -> None:
    with pytest.raises(QueryError, match="daily_sign_ins"):
        analytics.run_named(clean_world, "no_such_query")


# --------------------------------------------------------------------------- detections table


def test_write_detections_locally_is_idempotent(
    tmp_path: Path, planted: list[scenarios.Scenario]
) -> None:
    warehouse = write(
        tmp_path / "warehouse",
        clean_activity() + scenarios.records_of(planted, "activity_logs"),
        CLEAN_OPERATIONS + scenarios.records_of(planted, "operation_logs"),
    )
    planted_alerts = scenarios.alerts_of(planted)
    first = detections.write_detections_local(warehouse, now=NOW, params=PARAMS)
    assert first.found == len(planted_alerts) > 0
    assert first.new_by_severity == Counter(a.severity for a in planted_alerts)
    again = detections.write_detections_local(
        warehouse, now=NOW + timedelta(hours=1), params=PARAMS
    )
    assert (again.found, again.new) == (len(planted_alerts), 0)
    later = NOW + timedelta(days=2)  # the data stops: a gap alert joins the rest
    gap = detections.write_detections_local(warehouse, now=later, params=PARAMS)
    assert gap.new_by_severity == {"medium": 1}
    stored = rows(
        analytics.run_query(warehouse, "SELECT * FROM zoom_detections ORDER BY time, alert_id")
    )
    expected = [a.as_row() for a in scenarios.alerts_of(planted)]
    assert [{k: r[k] for k in ALERT_SCHEMA.names} for r in stored[:-1]] == expected
    assert {r["detected_at"] for r in stored} == {NOW, later}
    assert stored[-1]["detection"] == "activity_gap"


def test_scenarios_plant_one_call_per_stream(planted: list[scenarios.Scenario]) -> None:
    calls: list[tuple[str, int]] = []

    class Sink:
        def add_records(self, stream: str, records: Iterable[dict[str, str]]) -> None:
            calls.append((stream, len(list(records))))

    scenarios.plant(Sink(), planted)
    assert sorted(calls) == [
        ("activity_logs", len(scenarios.records_of(planted, "activity_logs"))),
        ("operation_logs", len(scenarios.records_of(planted, "operation_logs"))),
    ]
    assert len(calls) == 2 and all(n > 5 for _, n in calls)


def test_off_hours_scenario_refuses_business_hours() -> None:
    with pytest.raises(ValueError, match="business hours"):
        scenarios.off_hours_account_change(t("2025-03-12 10:00:00"), ADMIN)


# --------------------------------------------------------------------------- end to end


def test_simulator_job_tables_queries_end_to_end(tmp_path: Path) -> None:
    """Generated activity (clean for the detections) and no generated operations; the
    standard scenarios planted into the simulator; the job ingests; the queries answer."""
    from zoom_ingest.job import run
    from zoom_ingest.simulator import Simulator

    warehouse = tmp_path / "warehouse"
    with Simulator(seed=11, days=10, activity_per_day=150, operation_per_day=0, now=NOW) as sim:
        # The detections below run with PARAMS' learning period (7 days of the 10).
        learning_days = PARAMS["learning_days"]
        assert isinstance(learning_days, int)
        planted = scenarios.plant_standard_scenarios(sim, learning_days=learning_days)
        truth = sim.ground_truth("activity_logs")
        settings = simulator_settings(
            sim,
            backfill_start=(NOW - timedelta(days=10)).date(),
            requests_per_second=200,
        )
        summary = run(settings, LocalEngine(warehouse), progress=False, now=NOW)
    assert all(s.error is None for s in summary.streams)

    with analytics.LocalWarehouse(warehouse, now=NOW, params=PARAMS) as session:
        alerts = rows(session.detections())
        expected = [a.as_row() for a in scenarios.alerts_of(planted)]
        assert sorted(alerts, key=lambda r: (r["time"], r["alert_id"])) == expected

        per_day: dict[date, Counter[str]] = {}
        for record in truth:
            day = datetime.fromisoformat(record["time"].replace("Z", "+00:00")).date()
            per_day.setdefault(day, Counter())[record["type"]] += 1
        assert [
            (r["day"], r["sign_ins"], r["sign_outs"]) for r in rows(session.named("daily_sign_ins"))
        ] == [(day, c["Sign in"], c["Sign out"]) for day, c in sorted(per_day.items())]
        new_ips = rows(session.named("new_ip_sign_ins"))
        victim = next(s for s in planted if s.name == "new_ip_sign_in").records[0]
        assert {"email": victim["email"], "ip_address": victim["ip_address"]} in [
            {"email": r["email"], "ip_address": r["ip_address"]} for r in new_ips
        ]
        changes = rows(session.named("setting_changes"))
        # one row per change of the planted operations; nothing else was generated
        details = [r["operation_detail"] for r in scenarios.records_of(planted, "operation_logs")]
        assert len(changes) == sum(d.count(": from ") + d.count(": set to") for d in details)

        # No activity after the simulator's last record: the gap detection speaks up.
        last = max(datetime.fromisoformat(r["time"].replace("Z", "+00:00")) for r in truth)
    later = last + timedelta(hours=26)
    gap = named(warehouse, "activity_gap", now=later)
    assert gap == [scenarios.activity_gap_alert(last, later, ongoing=True).as_row()]


# --------------------------------------------------------------------------- Spark


@pytest.fixture(scope="module")
def spark_session() -> Any:
    pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e '.[spark]'")
    from zoom_ingest.engines.spark_session import local_session

    # A session of its own (temporary views and settings) on the process's one JVM.
    session = local_session().newSession()
    session.conf.set("spark.sql.session.timeZone", "UTC")
    # Tiny tables: one partition per shuffle and no re-planning keep each query quick.
    session.conf.set("spark.sql.shuffle.partitions", "1")
    session.conf.set("spark.sql.adaptive.enabled", "false")
    return session


def parse_plan(spark: Any, sql: str) -> None:
    spark._jsparkSession.sessionState().sqlParser().parsePlan(sql)


@pytest.mark.spark
def test_spark_parses_every_query(spark_session: Any) -> None:
    for query in [*QUERIES.values(), *DETECTIONS.values(), *analytics.VIEWS.values()]:
        parse_plan(spark_session, query.sql)
    for statement in analytics.view_statements():
        parse_plan(spark_session, statement)
    for query in DETECTIONS.values():  # with the settings written into their params
        parse_plan(spark_session, analytics.with_params(query.sql, PARAMS))


@pytest.mark.spark
def test_spark_parses_the_detections_task_statements(spark_session: Any) -> None:
    from zoom_ingest.engines.spark import create_table_sql

    parse_plan(spark_session, detections.alerts_sql(NOW))
    parse_plan(
        spark_session,
        create_table_sql(detections.DETECTIONS_TABLE, "`main`.`zoom`.`zoom_detections`"),
    )


@pytest.mark.spark
def test_the_detections_source_keeps_one_row_per_alert_id(spark_session: Any) -> None:
    """Two rows of one alert that differ in `change`: DISTINCT would keep both, and the
    MERGE on alert_id would insert the key twice."""
    twice = Query(
        name="twice",
        kind="detections",
        sql="SELECT 'a1' AS alert_id, 'twice' AS detection, 'high' AS severity, "
        "TIMESTAMP'2025-03-14 10:00:00' AS time, 'x@example.com' AS actor, 'y' AS target, "
        "c AS change FROM VALUES ('to 2'), ('to 3') AS t(c)",
    )
    rows = spark_session.sql(detections.alerts_sql(NOW, [twice, twice])).collect()
    assert [(r["alert_id"], r["change"]) for r in rows] == [("a1", "to 2")]
    collected = detections.collect_alerts(spark_session, NOW, [twice])
    assert collected.schema == detections.DETECTIONS_TABLE.schema
    assert collected.column("alert_id").to_pylist() == ["a1"]
    assert collected.column("time").to_pylist() == [datetime(2025, 3, 14, 10, tzinfo=UTC)]
    assert collected.column("detected_at").to_pylist() == [NOW]


@pytest.mark.spark
def test_spark_runs_the_detections_task_query_with_the_same_alerts(
    spark_session: Any, planted_world: Path, planted: list[scenarios.Scenario]
) -> None:
    """The union the Databricks task merges, run by Spark on the planted world, with each
    detection's current time pinned to NOW, gives exactly the planted alerts."""
    from dataclasses import replace

    from zoom_ingest.engines.spark import dataframe
    from zoom_ingest.tables import ALL_TABLES

    engine = LocalEngine(planted_world)
    for spec in ALL_TABLES.values():
        dataframe(spark_session, spec, engine.read_table(spec)).createOrReplaceTempView(spec.name)
    for statement in analytics.view_statements(temporary=True):
        spark_session.sql(statement)
    pinned = [
        replace(q, sql=analytics.pin_now(analytics.with_params(q.sql, PARAMS), NOW))
        for q in DETECTIONS.values()
    ]
    found = [r.asDict() for r in spark_session.sql(detections.alerts_sql(NOW, pinned)).collect()]
    # Spark hands back naive datetimes in the session time zone, UTC.
    found = [{**r, "time": r["time"].replace(tzinfo=UTC)} for r in found]
    expected = [
        {**a.as_row(), "detected_at": NOW.replace(tzinfo=None)}
        for a in scenarios.alerts_of(planted)
    ]
    assert sorted(found, key=lambda r: (r["time"], r["alert_id"])) == expected


# --------------------------------------------------------------------------- the bundle

ROOT = Path(__file__).resolve().parents[1]


def load_resource(name: str) -> dict[str, Any]:
    import yaml

    return yaml.safe_load((ROOT / "resources" / name).read_text(encoding="utf-8"))["resources"]


def test_the_dashboard_file_is_generated_from_the_queries() -> None:
    from zoom_ingest.dashboards import DASHBOARD_PATH, render_dashboard

    assert DASHBOARD_PATH.read_text(encoding="utf-8") == render_dashboard(), (
        "regenerate it: python -m zoom_ingest.dashboards"
    )
    [dashboard] = load_resource("zoom_ingest.dashboard.yml")["dashboards"].values()
    assert (ROOT / "resources" / dashboard["file_path"]).resolve() == DASHBOARD_PATH
    assert dashboard["dataset_catalog"] == "${var.catalog}"
    assert dashboard["dataset_schema"] == "${var.schema}"


def test_every_dashboard_widget_reads_columns_its_dataset_has(clean_world: Path) -> None:
    import json
    import re

    from zoom_ingest.dashboards import DASHBOARD_PATH, GRID_WIDTH

    document = json.loads(DASHBOARD_PATH.read_text(encoding="utf-8"))
    with analytics.LocalWarehouse(clean_world, now=NOW) as session:
        columns = {
            d["name"]: set(session.query("".join(d["queryLines"])).schema.names)
            for d in document["datasets"]
        }
    for name in set(columns) - {"latest_detections"}:
        assert "".join(document["datasets"][list(columns).index(name)]["queryLines"]) == (
            QUERIES[name].sql.rstrip("\n")
        )
    assert columns["latest_detections"] == set(detections.DETECTIONS_TABLE.schema.names)
    for page in document["pages"]:
        cells: set[tuple[int, int]] = set()
        for item in page["layout"]:
            box = item["position"]
            assert box["x"] + box["width"] <= GRID_WIDTH, item["widget"]["name"]
            area = {
                (x, y)
                for x in range(box["x"], box["x"] + box["width"])
                for y in range(box["y"], box["y"] + box["height"])
            }
            assert not area & cells, f"{item['widget']['name']} overlaps another widget"
            cells |= area
            for query in item["widget"].get("queries", []):
                spec = query["query"]
                for field in spec["fields"]:
                    for column in re.findall(r"`([^`]+)`", field["expression"]):
                        assert column in columns[spec["datasetName"]], (page["name"], field)
            encoded = json.dumps(item["widget"].get("spec", {}).get("encodings", {}))
            fields = {
                f["name"] for q in item["widget"].get("queries", []) for f in q["query"]["fields"]
            }
            assert set(re.findall(r'"fieldName": "([^"]+)"', encoded)) <= fields


def test_the_dashboards_latest_detections_read_the_stored_alerts(
    tmp_path: Path, planted: list[scenarios.Scenario]
) -> None:
    """The dataset reads zoom_detections (what the detections task stored, detected_at
    included) instead of running every detection again on each refresh."""
    import sqlglot

    from zoom_ingest.dashboards import DETECTIONS_DATASET, build_dashboard

    [dataset] = [d for d in build_dashboard()["datasets"] if d["name"] == DETECTIONS_DATASET]
    sql = "".join(dataset["queryLines"])
    read = {t.name for t in sqlglot.parse_one(sql, read="databricks").find_all(sqlglot.exp.Table)}
    assert read == {"zoom_detections"}
    warehouse = write(
        tmp_path / "warehouse",
        clean_activity() + scenarios.records_of(planted, "activity_logs"),
        CLEAN_OPERATIONS + scenarios.records_of(planted, "operation_logs"),
    )
    with analytics.LocalWarehouse(warehouse, now=NOW) as session:
        assert session.query(sql).num_rows == 0  # nothing stored yet: nothing shown
    stored = detections.write_detections_local(warehouse, now=NOW, params=PARAMS)
    assert stored.new == len(scenarios.alerts_of(planted)) > 0
    with analytics.LocalWarehouse(warehouse, now=NOW) as session:
        shown = rows(session.query(sql))
    expected = sorted(
        (a.as_row() for a in scenarios.alerts_of(planted)),
        key=lambda r: (-r["time"].timestamp(), r["alert_id"]),
    )
    assert [{k: r[k] for k in ALERT_SCHEMA.names} for r in shown] == expected
    assert {r["detected_at"] for r in shown} == {NOW}
    # 31 days on, the alerts are older than the dataset's 30 days.
    with analytics.LocalWarehouse(warehouse, now=NOW + timedelta(days=31)) as session:
        assert session.query(sql).num_rows == 0


def test_the_docs_grant_a_dashboard_viewer_every_table_the_datasets_read() -> None:
    """embed_credentials: false: viewers query with their own grants, so docs/databricks.md
    must list every table and view the datasets read, and only those."""
    import re

    import sqlglot

    from zoom_ingest.dashboards import build_dashboard

    read: set[str] = set()
    for dataset in build_dashboard()["datasets"]:
        tree = sqlglot.parse_one("".join(dataset["queryLines"]), read="databricks")
        ctes = {cte.alias for cte in tree.find_all(sqlglot.exp.CTE)}
        read |= {table.name for table in tree.find_all(sqlglot.exp.Table)} - ctes
    docs = (ROOT / "docs" / "databricks.md").read_text(encoding="utf-8")
    grants = docs.split("<!-- dashboard-grants:start -->")[1].split("<!-- dashboard-grants:end")[0]
    select = grants[grants.index("`SELECT` on these") :]
    assert set(re.findall(r"`(\w+)`", select)) - {"SELECT"} == read
    [dashboard] = load_resource("zoom_ingest.dashboard.yml")["dashboards"].values()
    assert dashboard["embed_credentials"] is False


def test_the_hourly_job_runs_the_detections_entry_point_after_ingest() -> None:
    job = load_resource("zoom_ingest.job.yml")["jobs"]["zoom_ingest"]
    ingest, loop = job["tasks"]
    assert loop["depends_on"] == [{"task_key": ingest["task_key"]}]
    task = loop["for_each_task"]["task"]
    wheel = task["python_wheel_task"]
    assert (wheel["package_name"], wheel["entry_point"]) == (
        "zoom_ingest",
        "zoom-ingest-detections",
    )
    defaults = {p["name"]: p["default"] for p in job["parameters"]}

    def rendered(account_schema: str) -> list[str]:
        return [
            a.replace("{{job.parameters.catalog}}", "main")
            .replace("{{job.parameters.schema}}", "zoom")
            .replace("{{job.parameters.fail_on}}", defaults["fail_on"])
            .replace("{{input.schema}}", account_schema)
            for a in wheel["parameters"]
        ]

    args = detections.build_parser().parse_args(rendered(""))
    assert (args.catalog, args.schema, args.fail_on) == ("main", "zoom", "high")
    assert detections.build_parser().parse_args(rendered("zoom_acme")).schema == "zoom_acme"
    assert job["schedule"]["quartz_cron_expression"].startswith("0 ")
    assert job["max_concurrent_runs"] == 1


class FakeSpark:
    """Records statements; answers the alerts query with `alerts` (micros for times)."""

    def __init__(self, alerts: list[tuple[Any, ...]]) -> None:
        self.statements: list[str] = []
        self.alerts = alerts
        self.catalog = self

    def setCurrentCatalog(self, name: str) -> None:
        self.statements.append(f"setCurrentCatalog({name})")

    def setCurrentDatabase(self, name: str) -> None:
        self.statements.append(f"setCurrentDatabase({name})")

    def sql(self, statement: str) -> Any:
        self.statements.append(statement)
        rows = self.alerts if statement.startswith("SELECT `alert_id`") else []
        return type("Result", (), {"collect": lambda _self: rows})()


class FakeEngine:
    """The Engine calls the detections task makes: ensure_tables, then merge_new."""

    def __init__(self, stored: set[str]) -> None:
        self.stored = stored
        self.calls: list[str] = []
        self.batches: list[pa.Table] = []

    def ensure_tables(self) -> None:
        self.calls.append("ensure_tables")

    def merge_new(self, spec: Any, batch: pa.Table) -> int:
        assert spec is detections.DETECTIONS_TABLE and batch.schema == spec.schema
        ids = batch.column("alert_id").to_pylist()
        assert len(ids) == len(set(ids)), "a MERGE source must not repeat a key"
        self.calls.append("merge_new")
        self.batches.append(batch)
        new = [i for i in ids if i not in self.stored]
        self.stored |= set(new)
        return len(new)


def test_the_spark_task_writes_through_the_engine_one_row_per_alert() -> None:
    from zoom_ingest.tables import ALL_TABLES

    assert ALL_TABLES["zoom_detections"] is detections.DETECTIONS_TABLE
    t = int(NOW.timestamp() * 1_000_000)
    now = int(NOW.timestamp() * 1_000_000)
    alerts = [
        ("h1", "privileged_role_granted", "high", t, "a@x", "b@x", "Admin", now),
        ("h1", "privileged_role_granted", "high", t, "a@x", "b@x", "Owner", now),
        ("h2", "sign_in_security_disabled", "high", t + 1, "a@x", None, "2FA off", now),
        ("m1", "activity_gap", "medium", t - 5, None, "activity_logs", "gap", now),
        ("l1", "ip_sign_in_burst", "low", t, "203.0.113.9", None, "12", now),
    ]
    spark = FakeSpark(alerts)
    engine = FakeEngine(stored={"h2"})
    result = detections.write_detections_spark(
        spark,  # type: ignore[arg-type]
        "main",
        "zoom",
        now=NOW,
        engine=engine,  # type: ignore[arg-type]
    )
    assert engine.calls == ["ensure_tables", "merge_new", "merge_new", "merge_new"]
    assert (result.found, result.new_by_severity) == (4, {"high": 1, "medium": 1, "low": 1})
    assert result.line() == "detections: 4 alerts found, 3 new (high 1, medium 1, low 1)"
    views = analytics.view_statements()
    assert views[0].startswith("CREATE OR REPLACE VIEW operation_changes AS")
    # The views the detections read, in the schema, where the dashboard reads them too.
    assert spark.statements[: 2 + len(views)] == [
        "setCurrentCatalog(main)",
        "setCurrentDatabase(zoom)",
        *views,
    ]
    # No table write of its own: the engine merges (and creates the table).
    writes = ("MERGE", "CREATE TABLE", "CREATE OR REPLACE TABLE", "INSERT")
    assert not [s for s in spark.statements if s.startswith(writes)]
    [high] = [b for b in engine.batches if b.column("severity")[0].as_py() == "high"]
    assert high.column("change").to_pylist() == ["Admin", "2FA off"]


@pytest.mark.parametrize(
    ("argv", "new", "exit_code"),
    [
        (["--catalog=main", "--schema=zoom"], {"high": 1}, 0),
        (["--catalog=main", "--schema=zoom", "--fail-on=high"], {"medium": 3}, 0),
        (["--catalog=main", "--schema=zoom", "--fail-on=medium"], {"medium": 3}, 6),
        (["--catalog=main", "--schema=zoom", "--fail-on=low"], {"high": 1}, 6),
    ],
)
def test_the_entry_point_fails_only_on_new_alerts_at_the_chosen_severity(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], new: dict[str, int], exit_code: int
) -> None:
    seen: list[tuple[str, str]] = []

    def fake(spark: Any, catalog: str, schema: str, **kwargs: Any) -> detections.DetectionRun:
        seen.append((catalog, schema))
        return detections.DetectionRun(NOW, sum(new.values()), new)

    monkeypatch.setattr(detections, "_active_session", lambda: None)
    monkeypatch.setattr(detections, "write_detections_spark", fake)
    assert detections.main(argv) == exit_code
    assert seen == [("main", "zoom")]


@pytest.mark.parametrize(
    "argv",
    [
        ["--catalog=main", "--schema="],
        ["--schema=zoom"],
        ["--catalog=a", "--schema=b", "--fail-on=urgent"],
        ["--catalog=a", "--schema=b", "--watched-countries=K1"],
        ["--catalog=a", "--schema=b", "--travel-window=soon"],
    ],
)
def test_the_entry_point_rejects_missing_or_bad_arguments(argv: list[str]) -> None:
    assert detections.main(argv) == 2


def test_the_entry_point_passes_the_detection_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    def fake(spark: Any, catalog: str, schema: str, **kwargs: Any) -> detections.DetectionRun:
        seen.append(kwargs["settings"])
        return detections.DetectionRun(NOW, 0, {})

    monkeypatch.setattr(detections, "_active_session", lambda: None)
    monkeypatch.setattr(detections, "write_detections_spark", fake)
    argv = ["--catalog=m", "--schema=z", "--watched-countries=ru,by", "--travel-window=2h"]
    assert detections.main(argv) == 0
    assert seen[0].sql_params() == {
        "watched_countries": "RU,BY",
        "travel_minutes": 120,
        "learning_days": 14,
    }


def test_the_docs_describe_every_query_and_detection() -> None:
    docs = (ROOT / "docs" / "analytics.md").read_text(encoding="utf-8")
    for name in [*QUERIES, *DETECTIONS]:
        assert f"`{name}`" in docs, name
    for query in DETECTIONS.values():
        assert f"| `{query.name}` | {query.severity} |" in docs, query.name


def test_records_dated_in_the_future_never_make_figures_negative_or_absurd(tmp_path: Path) -> None:
    """A warehouse holding records from 2099 (written before future-dated records became
    rejects, or by another tool): freshness ignores them, no gap is measured to them."""
    from zoom_ingest.normalise import Batch
    from zoom_ingest.tables import ACTIVITY_LOGS, OPERATION_LOGS

    warehouse = write(tmp_path / "warehouse", clean_activity(), CLEAN_OPERATIONS)
    engine = LocalEngine(warehouse)
    for spec, record in (
        (ACTIVITY_LOGS, activity(t("2099-01-01 00:00:00"), JANE, HOME[JANE])),
        (OPERATION_LOGS, {**CLEAN_OPERATIONS[0], "time": "2099-01-01T00:00:00Z"}),
    ):
        batch = Batch(spec, clock=lambda: datetime(2100, 1, 1, tzinfo=UTC))
        batch.add([record])
        assert engine.merge_new(spec, batch.to_arrow()) == 1
    freshness = {r["table_name"]: r for r in named(warehouse, "data_freshness")}
    assert freshness["activity_logs"]["latest_time"] == t("2025-03-14 09:04:00")
    assert freshness["activity_logs"]["hours_since_latest"] == 2.93
    assert freshness["operation_logs"]["latest_time"] == t("2025-03-13 09:00:00")
    assert all(r["hours_since_latest"] >= 0 for r in freshness.values())
    assert freshness["activity_logs"]["records_last_24h"] == 10  # not the 2099 one
    # The clean data has no gap; a record in 2099 makes none either (no 600,000 hours).
    assert named(warehouse, "activity_gap") == []
