"""A small Zoom account whose analytics answers are known: the "clean world".

Five users sign in at 09:0i and out at 17:0i UTC from their home addresses (in the
United States) every day from 2025-02-28 until NOW (Friday 2025-03-14 12:00 UTC); an admin
does benign work (users added, settings turned on, a demotion, recordings deleted) on
weekdays within business hours, in the shapes Zoom writes them (and two older shapes the
parser still reads). No detection fires on it; tests plant scenarios on top.

The data starts 14.5 days before NOW: the country tests shorten the new-country learning
period to 7 days with PARAMS.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path

from zoom_ingest import scenarios
from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.geo import ip_country_rows_for
from zoom_ingest.normalise import Batch
from zoom_ingest.settings import DetectionSettings
from zoom_ingest.tables import ACTIVITY_LOGS, IP_COUNTRIES, OPERATION_LOGS, UTC, format_time, lw_id

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)  # a Friday
ADMIN = scenarios.DEFAULT_ADMIN
USERS = scenarios.DEFAULT_USERS
JANE, OMAR, LI, SOFIA, KWAME = USERS
HOME = dict(scenarios.DEFAULT_HOMES)  # public addresses registered in the United States
CLIENT = {
    JANE: ("Mac", "6.2.5 (41233)"),
    OMAR: ("Windows", "6.1.0 (30010)"),
    LI: ("Browser", "-"),
    SOFIA: ("Windows", "6.2.5 (41233)"),
    KWAME: ("iOS", "6.0.3 (20000)"),
}
FIRST_DAY = date(2025, 2, 28)
DAYS = [FIRST_DAY + timedelta(days=n) for n in range(15)]  # 2025-02-28 … 2025-03-14


def t(text: str) -> datetime:
    """'2025-03-05 14:00:00' → aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def activity(
    at: datetime, email: str, ip: str, kind: str = "Sign in", client: tuple[str, str] | None = None
) -> dict[str, str]:
    client_type, version = client or CLIENT.get(email, ("Browser", "-"))
    return {
        "email": email,
        "time": format_time(at),
        "type": kind,
        "ip_address": ip,
        "client_type": client_type,
        "version": version,
    }


def operation(
    at: datetime, category: str, action: str, detail: str, operator: str = ADMIN
) -> dict[str, str]:
    return scenarios.operation_record(at, operator, category, action, detail)


def clean_activity() -> list[dict[str, str]]:
    """Every user signs in at 09:0i and out at 17:0i from home, every day until NOW."""
    records = []
    for day in DAYS:
        for i, user in enumerate(USERS):
            start = datetime(day.year, day.month, day.day, 9, i, tzinfo=UTC)
            records.append(activity(start, user, HOME[user]))
            if start + timedelta(hours=8) < NOW:
                records.append(activity(start + timedelta(hours=8), user, HOME[user], "Sign out"))
    return records


CLEAN_OPERATIONS = [
    operation(
        t("2025-03-03 10:00:00"),
        "User",
        "Add",
        f"Add User {KWAME}  - User Type: Basic - Department: Finance",
    ),
    operation(
        t("2025-03-03 10:05:00"),
        "User",
        "Update",
        f"Update User {KWAME}  - User Type: from Basic to Licensed",
    ),
    operation(
        t("2025-03-04 11:00:00"),
        "Account",
        "Update",
        "Security  - Require a passcode when scheduling new meetings: from Off to On",
    ),
    operation(  # an older shape: "Account Settings: <setting>: from A to B"
        t("2025-03-04 11:30:00"),
        "Account",
        "Update",
        "Account Settings: Sign in with two-factor authentication: from Off to On",
    ),
    operation(
        t("2025-03-05 14:00:00"), "User", "Update", f"Change Role  - {OMAR}: from Admin to Member"
    ),
    operation(
        t("2025-03-05 14:10:00"), "Role", "Update", f"Assign Role  - Member: add members {LI}"
    ),
    operation(
        t("2025-03-05 14:20:00"),
        "Role",
        "Update",
        "Update Role Auditor  - Privileges: from [Users:View, Groups:View] "
        "to [Users:View, Dashboard:View]",
    ),
    operation(  # an older shape: "Update User Settings - <user>: <path>: <setting>: from A to B"
        t("2025-03-06 09:30:00"),
        "User Settings",
        "Update",
        f"Update User Settings - {SOFIA}: Meeting > Security: Waiting room: from Off to On",
    ),
    operation(
        t("2025-03-06 16:00:00"),
        "Account",
        "Update",
        "Security  - Automatically sign users out after a specified time: from Off to On - "
        "Sign in with Two-Factor Authentication: from Off to On",
    ),
    operation(
        t("2025-03-07 13:00:00"),
        "Recording",
        "Delete",
        "Delete Recording - Weekly sync (ID 123 456 789)",
    ),
    operation(
        t("2025-03-07 13:05:00"),
        "Recording",
        "Recover",
        "Recover Recording - Meeting ID: 987 6543 2100, Topic: Board meeting",
    ),
    operation(t("2025-03-10 10:00:00"), "User", "Delete", "Delete User old.user@acme.example"),
    operation(t("2025-03-10 10:30:00"), "User", "Sign in with SSO", f"Sign in with SSO  - {JANE}"),
    operation(
        t("2025-03-11 15:00:00"),
        "Account",
        "Update",
        "Security  - Only allow sign in from: 198.51.100.0/24, 203.0.113.0/24",
    ),
    operation(
        t("2025-03-12 12:00:00"),
        "Billing",
        "Download",
        "Download Invoice  - Invoice Number: INV-2025-0042",
    ),
    operation(
        t("2025-03-12 13:00:00"),
        "Recording",
        "Delete",
        "Delete Recording - Meeting ID: 305 4083 5835, Topic: 週次定例",
    ),
    operation(
        t("2025-03-13 09:00:00"),
        "Zoom Rooms",
        "Update",
        "Zoom Rooms - Boardroom 3 (Berlin HQ): Settings > Meeting: Screen sharing: from Off to On",
    ),
]


#: The detections' settings in these tests: the defaults, with a 7-day learning period for
#: new countries (the data starts 14.5 days before NOW).
PARAMS = DetectionSettings(country_learning_days=7).sql_params()


def op_id(record: dict[str, str]) -> str:
    return lw_id(OPERATION_LOGS, t(record["time"][:-1].replace("T", " ")), record)


def write(
    warehouse: Path,
    activity_records: Iterable[dict[str, str]] = (),
    operation_records: Iterable[dict[str, str]] = (),
) -> Path:
    """The records as Delta tables in `warehouse`, through the local engine."""
    engine = LocalEngine(warehouse)
    engine.ensure_tables()
    for spec, records in ((ACTIVITY_LOGS, activity_records), (OPERATION_LOGS, operation_records)):
        batch = Batch(spec)
        batch.add(list(records))
        assert not batch.rejects
        engine.merge_new(spec, batch.to_arrow())
        if spec is ACTIVITY_LOGS:  # as the job does: the addresses' countries
            engine.merge_new(IP_COUNTRIES, ip_country_rows_for(batch.to_arrow()))
    return warehouse
