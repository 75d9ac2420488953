"""Known security scenarios: Zoom records planted at known times, and the alerts they raise.

A scenario is a handful of records exactly as the Zoom API serves them, plus the alert
each detection must return for them. Tests plant scenarios into clean data and assert
the exact alert rows; `zoom-ingest demo` plants `standard_scenarios` into its simulator
so that the report and the detections have something to show.

    sim_now = sim.now
    plant(sim, standard_scenarios(sim_now, users=some_emails))

Addresses come from 100.64.0.0/10 (shared address space), which the simulator's
generated data never uses, so a planted address is new to every user.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol

from .tables import ACTIVITY_LOGS, OPERATION_LOGS, UTC, format_time, lw_id

DEFAULT_ADMIN = "it.admin@acme.example"
DEFAULT_USERS = (
    "jane.doe@acme.example",
    "omar.haddad@acme.example",
    "li.wei@acme.example",
    "sofia.rossi@acme.example",
    "kwame.mensah@acme.example",
)
BURST_ADDRESS = "100.64.13.37"
NEW_ADDRESS = "100.64.200.9"
#: The burst detection's threshold (ip_sign_in_burst.sql): distinct users in 60 minutes.
BURST_USERS = 5


class RecordSink(Protocol):
    """Anything records can be planted into; the simulator is one."""

    def add_records(self, stream: str, records: Iterable[dict[str, str]]) -> None: ...


class SimulatorLike(RecordSink, Protocol):
    """What plant_standard_scenarios needs of a simulator."""

    now: datetime
    start_time: datetime

    def ground_truth(
        self, stream: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class ExpectedAlert:
    """One alert row a detection must return (see sql/detections/*.sql)."""

    detection: str
    severity: str
    time: datetime
    actor: str
    target: str
    change: str
    #: What the detection hashes after its name: the lw_id, or e.g. "<ip>|<unix seconds>".
    key: str

    @property
    def alert_id(self) -> str:
        return hashlib.sha256(f"{self.detection}|{self.key}".encode()).hexdigest()

    def as_row(self) -> dict[str, object]:
        """The alert as the detection returns it (the columns of analytics.ALERT_SCHEMA)."""
        return {
            "alert_id": self.alert_id,
            "detection": self.detection,
            "severity": self.severity,
            "time": self.time,
            "actor": self.actor,
            "target": self.target,
            "change": self.change,
        }


@dataclass(frozen=True)
class Scenario:
    """Records for one stream and the alerts they must raise (none: analytics only)."""

    name: str
    summary: str
    stream: str
    records: tuple[dict[str, str], ...]
    alerts: tuple[ExpectedAlert, ...] = field(default=())


def plant(sink: RecordSink, scenarios: Iterable[Scenario]) -> None:
    """Add the scenarios' records to a simulator (or any sink), one call per stream."""
    by_stream: dict[str, list[dict[str, str]]] = defaultdict(list)
    for scenario in scenarios:
        by_stream[scenario.stream].extend(scenario.records)
    for stream, records in by_stream.items():
        sink.add_records(stream, records)


def records_of(scenarios: Iterable[Scenario], stream: str) -> list[dict[str, str]]:
    """Every record the scenarios plant into one stream."""
    return [r for s in scenarios if s.stream == stream for r in s.records]


def alerts_of(scenarios: Iterable[Scenario]) -> list[ExpectedAlert]:
    """Every alert the scenarios must raise, oldest first."""
    alerts = [a for s in scenarios for a in s.alerts]
    return sorted(alerts, key=lambda a: (a.time, a.alert_id))


# --------------------------------------------------------------------------- operations


def operation_record(
    at: datetime, operator: str, category: str, action: str, detail: str
) -> dict[str, str]:
    """One operation-log record exactly as the Zoom API serves it."""
    return {
        "time": format_time(at),
        "operator": operator,
        "category_type": category,
        "action": action,
        "operation_detail": detail,
    }


def _operation_scenario(
    name: str,
    summary: str,
    record: dict[str, str],
    detection: str | None = None,
    severity: str = "",
    target: str = "",
    change: str = "",
) -> Scenario:
    alerts: tuple[ExpectedAlert, ...] = ()
    if detection:
        at = _parse(record["time"])
        alerts = (
            ExpectedAlert(
                detection=detection,
                severity=severity,
                time=at,
                actor=record["operator"],
                target=target,
                change=change,
                key=lw_id(OPERATION_LOGS, at, record),
            ),
        )
    return Scenario(name, summary, OPERATION_LOGS.name, (record,), alerts)


def privileged_role_granted(
    at: datetime, operator: str, user: str, role_from: str = "Member", role_to: str = "Admin"
) -> Scenario:
    """A member promoted to admin: "Change Role - <user>: from Member to Admin"."""
    detail = f"Change Role  - {user}: from {role_from} to {role_to}"
    return _operation_scenario(
        "privileged_role_granted",
        f"{operator} makes {user} {role_to}",
        operation_record(at, operator, "User", "Update", detail),
        "privileged_role_granted",
        "high",
        user,
        f"role: {role_from} → {role_to}",
    )


def two_factor_disabled(at: datetime, operator: str) -> Scenario:
    """Two-factor authentication switched off for the whole account."""
    setting = "Sign in with two-factor authentication"
    return _operation_scenario(
        "two_factor_disabled",
        f"{operator} turns two-factor authentication off",
        operation_record(
            at, operator, "Account", "Update", f"Account Settings: {setting}: from On to Off"
        ),
        "sign_in_security_disabled",
        "high",
        "account",
        f"{setting}: On → Off",
    )


def sign_in_method_changed(at: datetime, operator: str) -> Scenario:
    """Google sign-in allowed for the account."""
    setting = "Allow users to sign in with Google"
    detail = f"Account Settings - Security > Sign-in Methods: {setting}: from Off to On"
    return _operation_scenario(
        "sign_in_method_changed",
        f"{operator} allows sign-in with Google",
        operation_record(at, operator, "Account", "Update", detail),
        "sign_in_methods_changed",
        "medium",
        "account",
        f"{setting}: Off → On",
    )


def auto_sign_out_disabled(at: datetime, operator: str) -> Scenario:
    """Automatic sign-out of idle users switched off."""
    setting = "Automatically sign users out after a specified time"
    return _operation_scenario(
        "auto_sign_out_disabled",
        f"{operator} turns automatic sign-out off",
        operation_record(
            at,
            operator,
            "Account",
            "Update",
            f"Account Settings - Security: {setting}: from On to Off",
        ),
        "auto_sign_out_disabled",
        "medium",
        "account",
        f"{setting}: On → Off",
    )


def meeting_passcode_disabled(at: datetime, operator: str, user: str) -> Scenario:
    """One user no longer needs a passcode for instant meetings."""
    setting = "Require passcode for instant meetings"
    detail = f"Update User Settings - {user}: Meeting > Security: {setting}: from On to Off"
    return _operation_scenario(
        "meeting_passcode_disabled",
        f"{operator} drops the instant-meeting passcode of {user}",
        operation_record(at, operator, "User Settings", "Update", detail),
        "meeting_passcode_disabled",
        "medium",
        user,
        f"{setting}: On → Off",
    )


def off_hours_account_change(at: datetime, operator: str) -> Scenario:
    """An account setting changed at night or at the weekend (`at` must be such a time)."""
    if at.astimezone(UTC).weekday() < 5 and 8 <= at.astimezone(UTC).hour < 18:
        raise ValueError(f"{at.isoformat()} is within business hours (Mon–Fri 08–18 UTC)")
    setting = "Waiting room"
    detail = f"Account Settings - Meeting > Security: {setting}: from On to Off"
    local = at.astimezone(UTC)
    return _operation_scenario(
        "off_hours_account_change",
        f"{operator} changes the waiting room setting at {local:%a %H:%M} UTC",
        operation_record(at, operator, "Account", "Update", detail),
        "off_hours_account_change",
        "low",
        "account",
        f"{setting}: On → Off (at {local:%a %H:%M} UTC)",
    )


# --------------------------------------------------------------------------- activity


def _sign_in(at: datetime, email: str, ip: str, client: str, version: str) -> dict[str, str]:
    return {
        "email": email,
        "time": format_time(at),
        "type": "Sign in",
        "ip_address": ip,
        "client_type": client,
        "version": version,
    }


def new_ip_sign_in(
    at: datetime,
    email: str,
    ip: str = NEW_ADDRESS,
    client: str = "Mac",
    version: str = "6.2.5 (41233)",
) -> Scenario:
    """A user with earlier activity signs in from an address never seen for them.

    No detection fires: it shows up in analytics/new_ip_sign_ins.sql.
    """
    return Scenario(
        "new_ip_sign_in",
        f"{email} signs in from {ip}",
        ACTIVITY_LOGS.name,
        (_sign_in(at, email, ip, client, version),),
    )


def ip_sign_in_burst(
    at: datetime,
    users: Sequence[str],
    ip: str = BURST_ADDRESS,
    every: timedelta = timedelta(minutes=4),
) -> Scenario:
    """`users` (at least BURST_USERS) sign in from one new address, `every` apart from `at`."""
    if len(set(users)) < BURST_USERS:
        raise ValueError(f"a burst needs at least {BURST_USERS} distinct users")
    if every * (len(users) - 1) >= timedelta(minutes=60):
        raise ValueError("the sign-ins of a burst must fall within 60 minutes")
    records = tuple(
        _sign_in(at + every * i, user, ip, "Browser", "-") for i, user in enumerate(users)
    )
    first = _parse(records[0]["time"])
    alert = ExpectedAlert(
        detection="ip_sign_in_burst",
        severity="high",
        time=first,
        actor=ip,
        target=", ".join(sorted(set(users))),
        change=(
            f"{len(set(users))} users signed in from a new address within 60 minutes "
            f"({len(users)} sign-ins)"
        ),
        key=f"{ip}|{int(first.timestamp())}",
    )
    return Scenario(
        "ip_sign_in_burst",
        f"{len(users)} users sign in from {ip} within {every * (len(users) - 1)}",
        ACTIVITY_LOGS.name,
        records,
        (alert,),
    )


def activity_gap_alert(last_record: datetime, until: datetime, ongoing: bool) -> ExpectedAlert:
    """The alert for no activity after `last_record` until `until` (the next record or now).

    Gaps cannot be planted by adding records: leave a hole in the data, or evaluate the
    detections at a `now` more than 24 hours after the last record.
    """
    hours = int((until - last_record).total_seconds() // 3600)
    if ongoing:
        tail = " (none since)"
    else:
        tail = f" (next at {until.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC)"
    return ExpectedAlert(
        detection="activity_gap",
        severity="medium",
        time=last_record,
        actor="zoom_ingest",
        target="activity_logs",
        change=(
            f"no activity records for {hours} hours after "
            f"{last_record.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC{tail}"
        ),
        key=f"activity_logs|{int(last_record.timestamp())}",
    )


# --------------------------------------------------------------------------- the standard set


def standard_scenarios(
    now: datetime, *, admin: str = DEFAULT_ADMIN, users: Sequence[str] = DEFAULT_USERS
) -> list[Scenario]:
    """One scenario per detection, plus a new-address sign-in, at known times before `now`.

    `users` (at least BURST_USERS): the first is promoted and signs in from a new address
    (give one with earlier activity), the first BURST_USERS are the burst's victims.
    Account setting changes fall on weekdays within business hours, so that only the
    off-hours scenario raises off_hours_account_change.
    """
    if len(set(users)) < BURST_USERS:
        raise ValueError(f"standard_scenarios needs at least {BURST_USERS} distinct users")
    victim = users[0]
    return [
        privileged_role_granted(_business_day(now, 2, time(10, 17, 5)), admin, victim),
        two_factor_disabled(_business_day(now, 3, time(11, 2, 40)), admin),
        sign_in_method_changed(_business_day(now, 4, time(14, 30, 0)), admin),
        auto_sign_out_disabled(_business_day(now, 4, time(15, 45, 12)), admin),
        meeting_passcode_disabled(_business_day(now, 5, time(9, 5, 55)), admin, users[1]),
        off_hours_account_change(_weekend_night(now), admin),
        ip_sign_in_burst(_business_day(now, 1, time(3, 30, 0)), users[:BURST_USERS]),
        new_ip_sign_in(_business_day(now, 1, time(13, 14, 15)), victim),
    ]


def plant_standard_scenarios(sim: SimulatorLike, *, admin: str = DEFAULT_ADMIN) -> list[Scenario]:
    """Plant `standard_scenarios` at the simulator's `now`, with its own users as victims.

    The victims are people active on the first day of the simulated data, so that the
    new-address sign-in has a history to differ from. Returns the planted scenarios (their
    `alerts` are what the detections must find). For `zoom-ingest demo`.
    """
    first_day = sim.ground_truth(
        "activity_logs", sim.start_time, sim.start_time + timedelta(days=1)
    )
    oldest_first = [r.get("email") for r in reversed(first_day)]
    people = [e for e in dict.fromkeys(oldest_first) if isinstance(e, str) and e]
    users = people[:BURST_USERS] if len(people) >= BURST_USERS else DEFAULT_USERS
    planted = standard_scenarios(sim.now, admin=admin, users=users)
    plant(sim, planted)
    return planted


def _business_day(now: datetime, days_ago: int, at: time) -> datetime:
    """`at` (UTC) on the latest weekday at least `days_ago` days before `now`."""
    day: date = (now.astimezone(UTC) - timedelta(days=days_ago)).date()
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return datetime.combine(day, at, tzinfo=UTC)


def _weekend_night(now: datetime) -> datetime:
    """03:12:09 UTC on the latest Saturday at least two days before `now`."""
    day = (now.astimezone(UTC) - timedelta(days=2)).date()
    while day.weekday() != 5:
        day -= timedelta(days=1)
    return datetime.combine(day, time(3, 12, 9), tzinfo=UTC)


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
