"""Known security scenarios: Zoom records planted at known times, and the alerts they raise.

A scenario is a handful of records exactly as the Zoom API serves them, plus the alert
each detection must return for them. Tests plant scenarios into clean data and assert
the exact alert rows; `zoom-ingest demo` plants `standard_scenarios` into its simulator
so that the report and the detections have something to show.

    sim_now = sim.now
    plant(sim, standard_scenarios(sim_now, users=some_emails))

New addresses come from 100.64.0.0/10 (shared address space, no country), which the
simulator's generated data never uses, so a planted address is new to every user; the
country scenarios use public addresses registered in countries the simulated people never
live in (ABROAD_ADDRESS).
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
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
#: The default users' home addresses: public, registered in the United States.
DEFAULT_HOMES = {user: f"73.0.100.{10 + i}" for i, user in enumerate(DEFAULT_USERS)}
BURST_ADDRESS = "100.64.13.37"
NEW_ADDRESS = "100.64.200.9"
#: The burst detection's threshold (ip_sign_in_burst.sql): distinct users in 60 minutes.
BURST_USERS = 5
#: license_type_bulk_change.sql's threshold: distinct users in 60 minutes.
LICENSE_USERS = 10
#: Public addresses registered (RIR data) in countries the simulated people never live in:
#: Brazil, Australia, and North Korea (a default watched country).
ABROAD_ADDRESS = {"BR": "201.0.77.9", "AU": "1.120.33.5", "KP": "175.45.176.71"}


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
    *alerts: tuple[str, str, str, str],
) -> Scenario:
    """One operation record and its alerts: (detection, severity, target, change) each."""
    at = _parse(record["time"])
    key = lw_id(OPERATION_LOGS, at, record)
    expected = tuple(
        ExpectedAlert(detection, severity, at, record["operator"], target, change, key)
        for detection, severity, target, change in alerts
    )
    return Scenario(name, summary, OPERATION_LOGS.name, (record,), expected)


def privileged_role_granted(
    at: datetime,
    operator: str,
    user: str,
    role_from: str = "Member",
    role_to: str = "Co-Owner",
    *,
    shape: str = "change_role",
) -> Scenario:
    """A user promoted into a privileged role, in either of Zoom's shapes:
    "Change Role  - <user>: from A to B" or "Update User <user>  - User Role: from A to B"."""
    if shape == "change_role":
        detail = f"Change Role  - {user}: from {role_from} to {role_to}"
    else:
        detail = f"Update User {user}  - User Role: from {role_from} to {role_to}"
    return _operation_scenario(
        f"privileged_role_granted_{shape}",
        f"{operator} makes {user} {role_to}",
        operation_record(at, operator, "User", "Update", detail),
        ("privileged_role_granted", "high", user, f"role: {role_from} → {role_to}"),
    )


def two_factor_disabled(at: datetime, operator: str) -> Scenario:
    """Two-factor authentication and automatic sign-out switched off in one operation."""
    two_factor = "Sign in with Two-Factor Authentication"
    sign_out = "Automatically sign users out after a specified time"
    detail = f"Security  - {two_factor}: from On to Off - {sign_out}: from On to Off"
    return _operation_scenario(
        "two_factor_disabled",
        f"{operator} turns two-factor authentication and automatic sign-out off",
        operation_record(at, operator, "Account", "Update", detail),
        ("sign_in_security_disabled", "high", "account", f"{two_factor}: On → Off"),
        ("auto_sign_out_disabled", "medium", "account", f"{sign_out}: On → Off"),
    )


def password_requirements_weakened(at: datetime, operator: str) -> Scenario:
    """Sign-in password rules dropped, with an unrelated tightening in the same detail."""
    detail = (
        "Sign-In Password Requirement  - Have at least 1 letter: from On to Off - "
        "Have at least 1 number: from On to Off - Minimum password length: from 8 to 12"
    )
    return _operation_scenario(
        "password_requirements_weakened",
        f"{operator} drops the letter and number rules of sign-in passwords",
        operation_record(at, operator, "Account", "Update", detail),
        (
            "sign_in_security_disabled",
            "high",
            "account",
            "Have at least 1 letter: On → Off; Have at least 1 number: On → Off",
        ),
    )


def sign_in_method_changed(at: datetime, operator: str) -> Scenario:
    """Google sign-in allowed and SSO sign-in switched off, in one operation."""
    google, sso = "Allow users to sign in with Google", "Sign in with SSO"
    detail = f"Security  - {google}: from Off to On - {sso}: from On to Off"
    return _operation_scenario(
        "sign_in_method_changed",
        f"{operator} allows sign-in with Google and turns SSO sign-in off",
        operation_record(at, operator, "Account", "Update", detail),
        (
            "sign_in_methods_changed",
            "medium",
            "account",
            f"turned on: {google}; turned off: {sso}",
        ),
    )


def sso_configuration_changed(at: datetime, operator: str) -> Scenario:
    """The identity provider's sign-in URL pointed somewhere else."""
    old, new = "idp.acme.example/saml", "login.acme-sso.example/saml"
    detail = f"Single Sign-On  - Sign-in page URL: from {old} to {new}"
    return _operation_scenario(
        "sso_configuration_changed",
        f"{operator} points SSO at another identity provider",
        operation_record(at, operator, "Account", "Update", detail),
        ("sso_configuration_changed", "high", "account", f"Sign-in page URL: {old} → {new}"),
    )


def billing_plan_changed(at: datetime, operator: str) -> Scenario:
    """The plan changed."""
    detail = "Billing  - Plan: from Zoom Workplace Business to Zoom Workplace Pro"
    return _operation_scenario(
        "billing_plan_changed",
        f"{operator} downgrades the plan",
        operation_record(at, operator, "Billing", "Update", detail),
        (
            "billing_plan_changed",
            "medium",
            "account",
            "Plan: Zoom Workplace Business → Zoom Workplace Pro",
        ),
    )


def auto_sign_out_disabled(at: datetime, operator: str) -> Scenario:
    """Automatic sign-out of idle users switched off (alone)."""
    setting = "Automatically sign users out after a specified time"
    return _operation_scenario(
        "auto_sign_out_disabled",
        f"{operator} turns automatic sign-out off",
        operation_record(
            at, operator, "Account", "Update", f"Security  - {setting}: from On to Off"
        ),
        ("auto_sign_out_disabled", "medium", "account", f"{setting}: On → Off"),
    )


def meeting_passcode_disabled(at: datetime, operator: str, user: str) -> Scenario:
    """One user no longer needs a passcode for scheduled meetings."""
    setting = "Require a passcode when scheduling new meetings"
    return _operation_scenario(
        "meeting_passcode_disabled",
        f"{operator} drops the meeting passcode of {user}",
        operation_record(
            at,
            operator,
            "User Settings",
            "Update",
            f"Edit User {user}  - {setting}: from On to Off",
        ),
        ("meeting_passcode_disabled", "medium", user, f"{setting}: On → Off"),
    )


def group_pmi_passcode_disabled(at: datetime, operator: str, group: str = "Sales EMEA") -> Scenario:
    """A group's Personal Meeting ID passcode turned off."""
    setting = "Personal Meeting ID (PMI) Passcode"
    return _operation_scenario(
        "group_pmi_passcode_disabled",
        f"{operator} drops the PMI passcode of the group {group}",
        operation_record(
            at,
            operator,
            "User Settings",
            "Update",
            f"Edit Group {group}  - {setting}: from On to Off",
        ),
        ("meeting_passcode_disabled", "medium", group, f"{setting}: On → Off"),
    )


def license_type_bulk_change(
    at: datetime, operator: str, users: Sequence[str], every: timedelta = timedelta(minutes=2)
) -> Scenario:
    """`users` (at least LICENSE_USERS) downgraded from Licensed to Basic, `every` apart."""
    if len(set(users)) < LICENSE_USERS:
        raise ValueError(f"a bulk license change needs at least {LICENSE_USERS} distinct users")
    if every * (len(users) - 1) >= timedelta(minutes=60):
        raise ValueError("the changes must fall within 60 minutes")
    records = tuple(
        operation_record(
            at + every * i,
            operator,
            "User",
            "Update",
            f"Update User {user}  - User Type: from Licensed to Basic",
        )
        for i, user in enumerate(users)
    )
    first = _parse(records[0]["time"])
    alert = ExpectedAlert(
        detection="license_type_bulk_change",
        severity="medium",
        time=first,
        actor=operator,
        target=", ".join(sorted(set(users))),
        change=(
            f"{len(set(users))} users had their license type changed within 60 minutes "
            f"({len(users)} changes: Licensed → Basic)"
        ),
        key=str(int(first.timestamp())),
    )
    return Scenario(
        "license_type_bulk_change",
        f"{operator} downgrades {len(users)} users to Basic",
        OPERATION_LOGS.name,
        records,
        (alert,),
    )


def off_hours_account_change(at: datetime, operator: str) -> Scenario:
    """An account setting changed at night or at the weekend (`at` must be such a time)."""
    if at.astimezone(UTC).weekday() < 5 and 8 <= at.astimezone(UTC).hour < 18:
        raise ValueError(f"{at.isoformat()} is within business hours (Mon–Fri 08–18 UTC)")
    setting = "Waiting room"
    detail = f"Meeting  - {setting}: from On to Off"
    local = at.astimezone(UTC)
    return _operation_scenario(
        "off_hours_account_change",
        f"{operator} changes the waiting room setting at {local:%a %H:%M} UTC",
        operation_record(at, operator, "Account", "Update", detail),
        (
            "off_hours_account_change",
            "low",
            "account",
            f"{setting}: On → Off (at {local:%a %H:%M} UTC)",
        ),
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


def _country_of(address: str) -> str:
    from .geo import countries

    country = countries([address]).get(address)
    if country is None:
        raise ValueError(f"{address} has no country in the IP-to-country database")
    return country


def _new_country_alert(record: dict[str, str], before: Sequence[str]) -> ExpectedAlert:
    at = _parse(record["time"])
    country = _country_of(record["ip_address"])
    return ExpectedAlert(
        detection="new_country_sign_in",
        severity="medium",
        time=at,
        actor=record["ip_address"],
        target=record["email"],
        change=f"first sign-in from {country} (before: {', '.join(sorted(set(before)))})",
        key=lw_id(ACTIVITY_LOGS, at, record),
    )


def new_country_sign_in(
    at: datetime,
    email: str,
    before: Sequence[str],
    country: str = "AU",
    *,
    past_learning: bool = True,
) -> Scenario:
    """A user whose sign-ins came from the countries `before` signs in from `country` (one
    of ABROAD_ADDRESS) for the first time. `past_learning`: whether the user's history is
    older than the learning period (`learned_before`); only then does it alert."""
    record = _sign_in(at, email, ABROAD_ADDRESS[country], "Mac", "6.2.5 (41233)")
    return Scenario(
        "new_country_sign_in",
        f"{email} signs in from {country} for the first time",
        ACTIVITY_LOGS.name,
        (record,),
        (_new_country_alert(record, before),) if past_learning else (),
    )


def watched_country_sign_in(
    at: datetime, email: str, before: Sequence[str], *, past_learning: bool = True
) -> Scenario:
    """A sign-in from North Korea (a default watched country), also a new country (an
    alert of its own when `past_learning`, as in new_country_sign_in)."""
    ip = ABROAD_ADDRESS["KP"]
    record = _sign_in(at, email, ip, "Browser", "-")
    watched = ExpectedAlert(
        detection="watched_country_sign_in",
        severity="high",
        time=_parse(record["time"]),
        actor=ip,
        target=email,
        change="sign-in from KP (Browser)",
        key=lw_id(ACTIVITY_LOGS, _parse(record["time"]), record),
    )
    return Scenario(
        "watched_country_sign_in",
        f"{email} signs in from North Korea",
        ACTIVITY_LOGS.name,
        (record,),
        (watched, _new_country_alert(record, before)) if past_learning else (watched,),
    )


def impossible_travel(
    at: datetime,
    email: str,
    home: str,
    gap: timedelta = timedelta(minutes=25),
    *,
    past_learning: bool = True,
) -> Scenario:
    """A sign-in from `home`, then one from Brazil `gap` later (less than the 60-minute
    travel window): impossible travel, and Brazil is a new country for the user (an alert
    of its own when `past_learning`, as in new_country_sign_in)."""
    home_country = _country_of(home)
    there = ABROAD_ADDRESS["BR"]
    first = _sign_in(at, email, home, "Windows", "6.2.5 (41233)")
    second = _sign_in(at + gap, email, there, "Browser", "-")
    arrived = _parse(second["time"])
    minutes = int(gap.total_seconds() // 60)
    travel = ExpectedAlert(
        detection="impossible_travel",
        severity="high",
        time=arrived,
        actor=there,
        target=email,
        change=f"{home_country} → BR within {minutes} minutes ({home} → {there})",
        key=lw_id(ACTIVITY_LOGS, arrived, second),
    )
    return Scenario(
        "impossible_travel",
        f"{email} signs in from {home_country} and from Brazil {minutes} minutes apart",
        ACTIVITY_LOGS.name,
        (first, second),
        (travel, _new_country_alert(second, [home_country])) if past_learning else (travel,),
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
    now: datetime,
    *,
    admin: str = DEFAULT_ADMIN,
    users: Sequence[str] = DEFAULT_USERS,
    homes: Mapping[str, str] | None = None,
    known_since: Mapping[str, datetime] | None = None,
    learning_days: int | None = None,
) -> list[Scenario]:
    """One scenario per detection and per shape of operation_detail the detections read,
    plus a new-address sign-in, at known times before `now`.

    `users` (at least BURST_USERS): the first is promoted and signs in from a new address
    (give one with earlier activity), the first BURST_USERS are the burst's victims, the
    third, fourth and fifth sign in from a watched country, a new country and (impossibly)
    from home and Brazil. `homes` maps each user to an address they have used since the
    start of the data (default DEFAULT_HOMES). Account setting changes fall on weekdays
    within business hours, so that only the off-hours scenario raises
    off_hours_account_change.

    The sign-ins from a new country raise new_country_sign_in only for a user whose first
    sign-in with a country is `learning_days` (default: the detection's default) older:
    `known_since` maps each user to that first sign-in in the data the detections will
    read (a user missing from it has none). Without `known_since` every user's history
    is taken to be older than the learning period (the caller plants it).
    """
    if len(set(users)) < BURST_USERS:
        raise ValueError(f"standard_scenarios needs at least {BURST_USERS} distinct users")
    homes = dict(DEFAULT_HOMES if homes is None else homes)

    def past_learning(email: str, at: datetime) -> bool:
        if known_since is None:
            return True
        first = known_since.get(email)
        return first is not None and learned_before(at, first, learning_days)

    victim = users[0]
    domain = victim.rsplit("@", 1)[-1]
    downgraded = [*users, *(f"contractor{i:02d}@{domain}" for i in range(LICENSE_USERS))]
    watched_at = _business_day(now, 1, time(2, 10, 0))
    new_country_at = _business_day(now, 1, time(12, 40, 0))
    travel_at, travel_gap = _business_day(now, 1, time(12, 0, 0)), timedelta(minutes=25)
    return [
        privileged_role_granted(_business_day(now, 2, time(10, 17, 5)), admin, victim),
        privileged_role_granted(
            _business_day(now, 2, time(10, 19, 0)),
            admin,
            users[1],
            "Member",
            "Admin",
            shape="update_user",
        ),
        two_factor_disabled(_business_day(now, 3, time(11, 2, 40)), admin),
        password_requirements_weakened(_business_day(now, 3, time(11, 4, 0)), admin),
        sign_in_method_changed(_business_day(now, 4, time(14, 30, 0)), admin),
        sso_configuration_changed(_business_day(now, 4, time(14, 35, 0)), admin),
        auto_sign_out_disabled(_business_day(now, 4, time(15, 45, 12)), admin),
        meeting_passcode_disabled(_business_day(now, 5, time(9, 5, 55)), admin, users[1]),
        group_pmi_passcode_disabled(_business_day(now, 5, time(9, 7, 0)), admin),
        billing_plan_changed(_business_day(now, 5, time(16, 0, 0)), admin),
        license_type_bulk_change(
            _business_day(now, 6, time(13, 0, 0)), admin, downgraded[: LICENSE_USERS + 2]
        ),
        off_hours_account_change(_weekend_night(now), admin),
        ip_sign_in_burst(_business_day(now, 1, time(3, 30, 0)), users[:BURST_USERS]),
        new_ip_sign_in(_business_day(now, 1, time(13, 14, 15)), victim),
        watched_country_sign_in(
            watched_at,
            users[2],
            [_country_of(homes[users[2]])],
            past_learning=past_learning(users[2], watched_at),
        ),
        new_country_sign_in(
            new_country_at,
            users[3],
            [_country_of(homes[users[3]])],
            past_learning=past_learning(users[3], new_country_at),
        ),
        impossible_travel(
            travel_at,
            users[4],
            homes[users[4]],
            travel_gap,
            past_learning=past_learning(users[4], travel_at + travel_gap),
        ),
    ]


def plant_standard_scenarios(
    sim: SimulatorLike,
    *,
    admin: str = DEFAULT_ADMIN,
    history_start: datetime | None = None,
    learning_days: int | None = None,
) -> list[Scenario]:
    """Plant `standard_scenarios` at the simulator's `now`, with its own users as victims.

    The victims are people active on the first day of the simulated data from an address
    with a country, so that the new-address and new-country sign-ins have a history to
    differ from. Returns the planted scenarios (their `alerts` are exactly what the
    detections must find). For `zoom-ingest demo`.

    `history_start`: the oldest record the detections will read (default: the start of
    the simulated data; a backfill that starts later leaves the older ones out), and
    `learning_days` the new-country learning period they run with (default: the
    detection's default). A new-country sign-in alerts only after that much history, so
    its alert is expected only when the victim's first sign-in with a country since
    `history_start` is that old (a short simulation plants the sign-ins all the same).
    """
    from .geo import countries

    start = sim.start_time if history_start is None else max(history_start, sim.start_time)
    history = sim.ground_truth("activity_logs", start)
    first_day = [r for r in history if _parse(r["time"]) < start + timedelta(days=1)]
    homes: dict[str, str] = {}
    for record in reversed(first_day):  # oldest first
        email, ip = record.get("email"), record.get("ip_address")
        usable = isinstance(email, str) and email and isinstance(ip, str)
        if usable and email not in homes and countries([ip]).get(ip):
            homes[email] = ip
    # The country scenarios' victims (third to fifth) must be quiet around their planted
    # sign-ins: a sign-in of theirs from home within the travel window would make the planted
    # one impossible travel as well (rightly, but then it is not the scenario planted).
    late_night = _business_day(sim.now, 1, time(0, 0))
    midday = _business_day(sim.now, 1, time(10, 30))
    busy = {
        r.get("email")
        for start, hours in ((late_night, 4), (midday, 4))
        for r in sim.ground_truth("activity_logs", start, start + timedelta(hours=hours))
    }
    quiet = [u for u in homes if u not in busy]
    loud = [u for u in homes if u in busy]
    if len(homes) >= BURST_USERS and len(quiet) >= 3:
        users = [*(loud + quiet[3:])[:2], *quiet[:3]]
        users = [*users, *(u for u in homes if u not in users)][:BURST_USERS]
    else:
        users, homes = list(DEFAULT_USERS), dict(DEFAULT_HOMES)
    planted = standard_scenarios(
        sim.now,
        admin=admin,
        users=users,
        homes=homes,
        known_since=first_sign_ins_with_a_country(history),
        learning_days=learning_days,
    )
    plant(sim, planted)
    return planted


def first_sign_ins_with_a_country(records: Iterable[dict[str, Any]]) -> dict[str, datetime]:
    """email → the time of the user's first sign-in from an address with a country, in
    activity records (what new_country_sign_in.sql counts as the start of a history)."""
    from .geo import countries

    sign_ins = [
        r
        for r in records
        if r.get("type") == "Sign in" and r.get("email") and isinstance(r.get("ip_address"), str)
    ]
    located = countries(r["ip_address"] for r in sign_ins)
    first: dict[str, datetime] = {}
    for record in sign_ins:
        if located.get(record["ip_address"]):
            at = _parse(record["time"])
            email = record["email"]
            first[email] = min(at, first.get(email, at))
    return first


def learned_before(at: datetime, first: datetime, learning_days: int | None = None) -> bool:
    """Whether a user whose first sign-in with a country was at `first` is past the
    new-country learning period at `at` (new_country_sign_in.sql compares whole seconds)."""
    if learning_days is None:
        from .settings import DetectionSettings

        learning_days = DetectionSettings().country_learning_days
    return math.floor(at.timestamp()) - math.floor(first.timestamp()) >= learning_days * 86400


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
