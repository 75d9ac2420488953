"""Seeded, realistic Zoom report records, generated lazily per (stream, UTC day).

Everything follows from the seed: the same seed and parameters give the same records,
byte for byte. A day is generated the first time a request or ``ground_truth`` touches
it and is kept, already serialised, in a size-bounded cache: a page of 300 records is a
slice of one bytes object, so serving it costs microseconds, and an evicted day is simply
generated again. Records added later (``add_records``) are kept apart and merged in.

Order: newest first; records of the same second keep a stable order (generated records
by their generation rank, then added records in the order they were added). Each record
has an integer order key ``time << TIE_BITS | (TIE_MASK - seq)``: a larger key is
newer, and paging remembers the key of the last record it served.
"""

from __future__ import annotations

import json
import math
import random
import threading
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from itertools import accumulate
from typing import Any

#: Python 3.10 has no datetime.UTC.
UTC = timezone.utc


#: The reports this stand-in serves, named after our tables (`ground_truth("activity_logs")`).
#: Its own list on purpose, not the client's registry (zoom/streams.py): each report needs
#: a record generator here and an endpoint in routes.py, so a report the client learns
#: about is not served until the simulator models it. test_stream_registry.py holds the
#: two lists, paths, records keys and scopes to each other. The simulator's other copies
#: of Zoom's rules (page sizes and retention in paging.py, category filters below, scopes
#: in oauth.py) are likewise its own reading of Zoom's docs, so that a misreading in the
#: client shows up as a failing test instead of being shared by both sides.
ACTIVITY_LOGS = "activity_logs"
OPERATION_LOGS = "operation_logs"
STREAMS = (ACTIVITY_LOGS, OPERATION_LOGS)

#: `category_type` filter value of GET /report/operationlogs → the display names that
#: records in that category carry ("all" is no filter). Zoom files chat operations under
#: both "IM" and "Channels".
CATEGORY_DISPLAY_NAMES: Mapping[str, tuple[str, ...]] = {
    "user": ("User",),
    "user_settings": ("User Settings",),
    "account": ("Account",),
    "billing": ("Billing",),
    "im": ("IM", "Channels"),
    "recording": ("Recording",),
    "phone_contacts": ("Phone Contacts",),
    "webinar": ("Webinar",),
    "sub_account": ("Sub Account",),
    "role": ("Role",),
    "zoom_rooms": ("Zoom Rooms",),
}
CATEGORY_FILTERS = ("all", *CATEGORY_DISPLAY_NAMES)
DISPLAY_NAMES = tuple(name for names in CATEGORY_DISPLAY_NAMES.values() for name in names)
_DISPLAY_INDEX = {name: i for i, name in enumerate(DISPLAY_NAMES)}
#: Category code of records whose category_type is not a known display name.
OTHER_CATEGORY = len(DISPLAY_NAMES)

TIE_BITS = 24
TIE_MASK = (1 << TIE_BITS) - 1
DAY_SECONDS = 86_400


def order_key(epoch_second: int, seq: int) -> int:
    return (epoch_second << TIE_BITS) | (TIE_MASK - seq)


def key_second(key: int) -> int:
    return key >> TIE_BITS


def category_codes(category_filter: str) -> frozenset[int] | None:
    """The category codes a `category_type` filter value selects (None: all)."""
    if category_filter == "all":
        return None
    return frozenset(_DISPLAY_INDEX[name] for name in CATEGORY_DISPLAY_NAMES[category_filter])


def format_second(epoch_second: int) -> str:
    return datetime.fromtimestamp(epoch_second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_record_time(value: object) -> int | None:
    """Epoch second of a record's `time` (RFC 3339), or None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return math.floor(parsed.timestamp())


# --------------------------------------------------------------------------- the world

_FIRST = (
    "alice", "bob", "carol", "david", "emma", "farah", "george", "hana", "ivan", "julia",
    "kenji", "laura", "mateo", "nora", "oliver", "priya", "quentin", "rosa", "samir", "tanya",
    "umar", "valentina", "wei", "xavier", "yara", "zoë", "josé", "søren", "łukasz", "françois",
    "anaïs", "björn", "chloé", "dāvis", "eléonore", "grzegorz", "ingrid", "jürgen", "małgorzata",
)  # fmt: skip
_LAST = (
    "smith", "jones", "müller", "garcía", "nguyen", "kowalski", "okafor", "rossi", "johansson",
    "dubois", "tanaka", "patel", "kim", "cohen", "silva", "öztürk", "núñez", "ødegaard",
    "schröder", "lefèvre", "novák", "andrés", "brown", "wilson", "moreau", "fischer",
)  # fmt: skip
_NON_LATIN = (
    "王伟", "李娜", "张敏", "佐藤花子", "鈴木一郎", "김민준", "이서연", "иван.петров",
    "ольга.смирнова", "δημήτρης", "محمد.علي",
)  # fmt: skip
_DOMAINS = ("acme.example", "acme.example", "acme.example", "acme-eu.example", "acme.co.example")

#: (client_type, weight); versions are per device.
_CLIENTS = (
    ("Windows", 28), ("win", 10), ("Mac", 24), ("Browser", 13), ("iOS", 10), ("Android", 8),
    ("Linux", 3), ("iPad", 2), ("Zoom Rooms", 2),
)  # fmt: skip
#: Where the simulated people live: (country, weight, IPv4 /16 blocks, IPv6 /32 prefix).
#: Every block is registered to its country in the Regional Internet Registries' data (a
#: test checks each /24 against the offline IP-to-country database), so a person's home,
#: phone and office addresses all lie in their own country and the country detections
#: (new country, watched countries, impossible travel) stay silent on generated data.
REGIONS: tuple[tuple[str, int, tuple[tuple[int, int], ...], str], ...] = (
    ("US", 40, ((73, 0), (73, 17), (73, 34), (73, 51), (73, 68), (98, 1), (98, 2)), "2600:1700"),
    ("DE", 20, ((91, 0), (91, 1), (91, 2), (91, 3), (91, 4), (91, 5)), "2003:e0"),
    ("GB", 15, ((86, 0), (86, 1), (86, 2), (86, 3), (86, 4), (86, 5)), "2a00:23c0"),
    ("FR", 10, ((90, 0), (90, 1), (90, 2), (90, 3), (90, 4), (90, 5)), "2a01:cb00"),
    ("JP", 10, ((126, 0), (126, 1), (126, 2), (133, 0), (133, 1), (133, 2)), "240b:10"),
    ("IN", 5, ((117, 96), (117, 97), (117, 98), (117, 99), (117, 192), (117, 193)), "2401:4900"),
)  # fmt: skip
_REGION_BY_COUNTRY = {region[0]: region for region in REGIONS}

#: Relative sign-in activity per local hour of day (people work office hours).
_LOCAL_HOUR_WEIGHTS = (
    1, 1, 1, 1, 1, 2, 4, 8, 13, 13, 12, 10, 9, 10, 12, 11, 10, 8, 5, 3, 2, 2, 1, 1,
)  # fmt: skip


def _json(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


@dataclass(frozen=True)
class Device:
    client_type: str
    version: str
    #: `,"client_type":…,"version":…` ready to append to a record.
    fragment: str


@dataclass(frozen=True)
class Person:
    email: str
    email_json: str
    devices: tuple[Device, ...]
    #: `,"ip_address":"…"` fragments of the person's usual addresses (home, phone).
    ip_fragments: tuple[str, ...]
    #: Where they live (ISO code; see REGIONS) and their office's shared addresses.
    country: str = "US"
    office_fragments: tuple[str, ...] = ()


@dataclass
class World:
    """The account: its people, their devices and addresses, its admins and rooms."""

    people: list[Person]
    activity_weights: list[float]  # cumulative; a few people sign in a lot
    admins: list[str]
    admin_weights: list[float]  # cumulative
    egress_fragments: tuple[str, ...]  # the offices' shared public addresses (all regions)
    rooms: tuple[str, ...] = ("Boardroom 3 (Berlin HQ)", "Huddle 2 – 東京", "Fishbowl (NYC)")

    @classmethod
    def build(cls, seed: int, population: int) -> World:
        rng = random.Random(f"{seed}/world")
        offices = {
            country: tuple(f',"ip_address":"{_ip(rng, country, office=True)}"' for _ in range(2))
            for country, *_ in REGIONS
        }
        countries = [region[0] for region in REGIONS]
        country_weights = [region[1] for region in REGIONS]
        people: list[Person] = []
        emails: set[str] = set()
        while len(people) < population:
            email = _email(rng)
            if email in emails:
                email = email.replace("@", f"{len(people)}@", 1)
            emails.add(email)
            country = rng.choices(countries, weights=country_weights)[0]
            people.append(
                Person(
                    email=email,
                    email_json=_json(email),
                    devices=tuple(_device(rng) for _ in range(rng.choice((1, 1, 2, 2, 3)))),
                    ip_fragments=tuple(
                        f',"ip_address":"{_ip(rng, country)}"' for _ in range(rng.choice((1, 2, 3)))
                    ),
                    country=country,
                    office_fragments=offices[country],
                )
            )
        weights = list(accumulate(1.0 / (rank + 1) ** 0.6 for rank in range(population)))
        admins = [p.email for p in people[: max(2, min(12, population // 20))]]
        admin_weights = list(accumulate(1.0 / (rank + 1) for rank in range(len(admins))))
        egress = tuple(fragment for pair in offices.values() for fragment in pair)
        return cls(people, weights, admins, admin_weights, egress)


def _email(rng: random.Random) -> str:
    domain = rng.choice(_DOMAINS)
    if rng.random() < 0.12:
        return f"{rng.choice(_NON_LATIN)}@{domain}"
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    shape = rng.random()
    if shape < 0.7:
        local = f"{first}.{last}"
    elif shape < 0.9:
        local = f"{first[0]}{last}"
    else:
        local = f"{first}_{last}{rng.randrange(1, 99)}"
    return f"{local}@{domain}"


def _device(rng: random.Random) -> Device:
    client = rng.choices([c for c, _ in _CLIENTS], weights=[w for _, w in _CLIENTS])[0]
    if client == "Browser":
        version = "-"
    else:
        version = (
            f"{rng.choice((5, 6, 6, 6))}.{rng.randrange(0, 5)}.{rng.randrange(0, 13)} "
            f"({rng.randrange(10000, 60000)})"
        )
    fragment = f',"client_type":{_json(client)},"version":{_json(version)}'
    return Device(client, version, fragment)


def _ip(rng: random.Random, country: str, office: bool = False) -> str:
    """A public address registered in `country` (one of REGIONS): IPv6 a quarter of the
    time; offices sit in the first block of their country."""
    _, _, blocks, prefix = _REGION_BY_COUNTRY[country]
    if rng.random() < 0.25:
        groups = [f"{rng.randrange(0x10000):x}" for _ in range(4)]
        return f"{prefix}:{rng.randrange(0x10000):x}::" + ":".join(groups[:2])
    a, b = blocks[0] if office else rng.choice(blocks)
    return f"{a}.{b}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


# --------------------------------------------------------------------------- generators

#: One generated record: (epoch second, JSON text, category code).
Generated = tuple[int, str, int]


def _times(rng: random.Random, lo: int, hi: int, count: int, offset_hours: float) -> list[int]:
    """`count` seconds in [lo, hi), following office hours in the account's time zone;
    about 3% repeat another record's second (Zoom has same-second ties)."""
    segments: list[tuple[int, int]] = []
    weights: list[float] = []
    start = lo
    while start < hi:
        end = min(hi, (start // 3600 + 1) * 3600)
        local_hour = int(((start % DAY_SECONDS) / 3600 + offset_hours) % 24)
        segments.append((start, end - start))
        weights.append(_LOCAL_HOUR_WEIGHTS[local_hour] * (end - start))
        start = end
    chosen = rng.choices(segments, weights=weights, k=count)
    random_ = rng.random
    times = [begin + int(random_() * length) for begin, length in chosen]
    for i in range(1, count):
        if random_() < 0.03:
            times[i] = times[i - 1]
    return times


class ActivityGenerator:
    """Sign-in / sign-out records: {email, time, type, ip_address, client_type, version}."""

    def __init__(self, world: World, offset_hours: float) -> None:
        self.world = world
        self.offset_hours = offset_hours

    def generate(self, rng: random.Random, lo: int, hi: int, count: int) -> list[Generated]:
        world = self.world
        times = _times(rng, lo, hi, count, self.offset_hours)
        people = rng.choices(world.people, cum_weights=world.activity_weights, k=count)
        random_ = rng.random
        day_start = lo - lo % DAY_SECONDS
        date_prefix = format_second(day_start)[:11]  # "2025-08-11T"
        out: list[Generated] = []
        for t, person in zip(times, people, strict=True):
            kind = "Sign in" if random_() < 0.62 else "Sign out"
            r = random_()
            if r < 0.02:  # Zoom leaves out address and client on some records
                tail = ""
            else:
                device = _pick(person.devices, random_()).fragment
                if r < 0.03:
                    tail = device
                elif r < 0.45:
                    tail = _pick(person.office_fragments, random_()) + device
                elif r < 0.93:
                    tail = _pick(person.ip_fragments, random_()) + device
                else:  # a café, a hotel, a phone's hotspot: somewhere in their country
                    tail = f',"ip_address":"{_ip(rng, person.country)}"' + device
            s = t - day_start  # formatting by hand: strftime would double the cost
            stamp = f"{date_prefix}{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z"
            record = f'{{"email":{person.email_json},"time":"{stamp}","type":"{kind}"{tail}}}'
            out.append((t, record, 0))
        return out


def _pick(options: tuple[Any, ...], fraction: float) -> Any:
    return options[int(fraction * len(options))]


class OperationGenerator:
    """Admin operations: {time, operator, category_type, action, operation_detail}."""

    def __init__(self, world: World, offset_hours: float) -> None:
        self.world = world
        self.offset_hours = offset_hours
        names = [name for name, _ in _OPERATION_CATEGORIES]
        self._categories = names
        self._cum_weights = list(accumulate(w for _, w in _OPERATION_CATEGORIES))

    def generate(self, rng: random.Random, lo: int, hi: int, count: int) -> list[Generated]:
        world = self.world
        times = _times(rng, lo, hi, count, self.offset_hours)
        categories = rng.choices(self._categories, cum_weights=self._cum_weights, k=count)
        operators = rng.choices(world.admins, cum_weights=world.admin_weights, k=count)
        out: list[Generated] = []
        for t, category, operator in zip(times, categories, operators, strict=True):
            if category == "Account":
                # Admins change account settings on weekdays, 08:00–18:00 UTC (the off-hours
                # detection's default); at the weekend they edit users' settings instead.
                day = t - t % DAY_SECONDS
                if (t // DAY_SECONDS + 3) % 7 >= 5:  # 1970-01-01 was a Thursday
                    category = "User Settings"
                else:
                    t = day + 8 * 3600 + (t - day) % (10 * 3600)
            action, detail = _OPERATION_TEMPLATES[category](rng, world)
            record = {
                "time": format_second(t),
                "operator": operator,
                "category_type": category,
                "action": action,
                "operation_detail": detail,
            }
            out.append((t, json.dumps(record, ensure_ascii=False), _DISPLAY_INDEX[category]))
        return out


#: (section, setting, sensitive). Background admins only ever tighten sensitive settings
#: (Off → On): weakening them is what the detections look for, and only planted scenarios
#: (scenarios.py) do it.
_SETTINGS = (
    ("Security", "Waiting room", True),
    ("Security", "Require a passcode when scheduling new meetings", True),
    ("Security", "Personal Meeting ID (PMI) Passcode", True),
    ("Security", "Sign in with Two-Factor Authentication", True),
    ("Security", "Automatically sign users out after a specified time", True),
    ("Sign-In Password Requirement", "Have at least 1 special character", True),
    ("Schedule Meeting", "Host video", False),
    ("In Meeting (Basic)", "Chat", False),
    ("In Meeting (Basic)", "Allow removed participants to rejoin", False),
    ("In Meeting (Advanced)", "Remote control", False),
    ("Cloud recording", "Record active speaker with shared screen", False),
    ("Cloud recording", "Auto delete cloud recordings after days", False),
    ("Audio", "Mask phone number in the participant list", False),
)
_GROUPS = ("Sales EMEA", "Engineering", "Support – APAC", "Contractors")
_PRIVILEGES = tuple(
    f"{area}:{verb}"
    for area in (
        "Users", "Groups", "Roles", "Account Profile", "Account Settings", "Billing",
        "Subscription", "Integrations", "Dashboard", "Usage Reports", "Operation Logs",
        "Sign In/Sign Out", "Recording Management", "Zoom Rooms", "Webinar",
        "Phone System Management", "Single Sign-On", "Managed Domains", "IM Management",
        "Marketplace", "Security", "Data Retention", "Legal Hold", "Contact Center",
    )
    for verb in ("View", "Edit")
)  # fmt: skip
_ROLES = ("Member", "Admin", "Owner", "Auditor", "Billing Admin", "Room Admin", "IT Helpdesk")
#: Role changes background admins make: between ordinary roles, demotions, and moves
#: between privileged roles. Promotions into a privileged role are planted, never background.
_ROLE_MOVES = (
    ("Member", "Auditor"), ("Auditor", "Member"), ("Member", "IT Helpdesk"),
    ("IT Helpdesk", "Member"), ("Member", "Room Admin"), ("Room Admin", "Member"),
    ("Admin", "Member"), ("Co-Owner", "Admin"), ("Admin", "Co-Owner"), ("Billing Admin", "Admin"),
)  # fmt: skip
#: Custom roles background admins edit, and the privileges they give them: none of them
#: admin-level (no Users, Roles, Account Settings, Security, SSO, Billing … edit rights).
_CUSTOM_ROLES = ("Auditor", "Room Admin", "IT Helpdesk")
_ORDINARY_PRIVILEGES = tuple(
    p for p in _PRIVILEGES
    if p.endswith(":View") or p.split(":")[0] in (
        "Recording Management", "Zoom Rooms", "Webinar", "Dashboard", "Usage Reports", "Marketplace"
    )
)  # fmt: skip
_TOPICS = ("Weekly sync", "Quartalszahlen Q3 – Überblick", "週次定例", "Board meeting", "1:1")


def _target(rng: random.Random, world: World) -> str:
    return rng.choice(world.people).email


def _on_off(rng: random.Random) -> tuple[str, str]:
    return ("On", "Off") if rng.random() < 0.5 else ("Off", "On")


def _meeting_id(rng: random.Random) -> str:
    n = f"{rng.randrange(10**9, 10**11)}"
    return f"{n[:3]} {n[3:7]} {n[7:]}"


def _user_op(rng: random.Random, world: World) -> tuple[str, str]:
    who = _target(rng, world)
    r = rng.random()
    if r < 0.1:
        return "Add", f"Add User {who}"
    if r < 0.2:
        department = rng.choice(("Finance", "Sales", "Engineering", "Support"))
        kind = rng.choice(("Basic", "Licensed"))
        return "Add", f"Add User {who}  - User Type: {kind} - Department: {department}"
    if r < 0.3:
        old, new = rng.choice(_ROLE_MOVES)
        return "Update", f"Change Role  - {who}: from {old} to {new}"
    if r < 0.35:
        old, new = rng.choice(_ROLE_MOVES)
        return "Update", f"Update User {who}  - User Role: from {old} to {new}"
    if r < 0.5:
        old, new = ("Basic", "Licensed") if rng.random() < 0.6 else ("Licensed", "Basic")
        return "Update", f"Update User {who}  - User Type: from {old} to {new}"
    if r < 0.58:
        title = rng.choice(("Contractor", "Account Executive", "Staff Engineer", "Support Lead"))
        if rng.random() < 0.5:
            return "Update", f"Edit User {who}  - Job Title: set to {title}"
        return "Update", (
            f"Edit User {who}  - Job Title: set to {title} - Department: from Sales to Finance"
        )
    if r < 0.65:
        return "Delete", f"Delete User {who}"
    if r < 0.75:
        return "Deactivate", f"Deactivate User {who}"
    if r < 0.8:
        return "Activate", f"Activate User {who}"
    return "Sign in with SSO", f"Sign in with SSO  - {who}"


def _setting_change(rng: random.Random) -> tuple[str, str]:
    """(section, "<setting>: from A to B"); sensitive settings only tightened."""
    section, setting, sensitive = rng.choice(_SETTINGS)
    old, new = ("Off", "On") if sensitive else _on_off(rng)
    return section, f"{setting}: from {old} to {new}"


def _user_settings_op(rng: random.Random, world: World) -> tuple[str, str]:
    if rng.random() < 0.25:  # a group's settings
        group = rng.choice(_GROUPS)
        _, change = _setting_change(rng)
        return "Update", f"Edit Group {group}  - {change}"
    _, change = _setting_change(rng)
    return "Update", f"Edit User {_target(rng, world)}  - {change}"


def _account_op(rng: random.Random, world: World) -> tuple[str, str]:
    r = rng.random()
    if r < 0.1:  # long lists: allowed sign-in ranges
        blocks = [block for region in REGIONS for block in region[2]]
        ranges = ", ".join(
            "{}.{}.{}.0/24".format(*rng.choice(blocks), rng.randrange(256))
            for _ in range(rng.randrange(40, 160))
        )
        return "Update", f"Security  - Only allow sign in from: {ranges}"
    if r < 0.2:
        return "Update", "Account Profile  - Account Name: from Acme Corp to Acme Corporation"
    if r < 0.25:
        old = rng.choice((8, 10))
        return "Update", (
            "Sign-In Password Requirement  - Have at least 1 letter: from Off to On - "
            f"Minimum password length: from {old} to {old + 2}"
        )
    section, change = _setting_change(rng)
    if rng.random() < 0.3:  # several changes in one detail
        second_section, second = _setting_change(rng)
        if second_section == section and second.split(":")[0] != change.split(":")[0]:
            change = f"{change} - {second}"
    return "Update", f"{section}  - {change}"


def _billing_op(rng: random.Random, world: World) -> tuple[str, str]:
    # Reads only: plan, license and billing-contact changes are planted (scenarios.py).
    invoice = f"INV-{rng.randrange(2024, 2027)}-{rng.randrange(1, 9999):04d}"
    return "Download", f"Download Invoice  - Invoice Number: {invoice}"


def _im_op(rng: random.Random, world: World) -> tuple[str, str]:
    old, new = _on_off(rng)
    return "Update", f"IM Settings  - Allow users to send files: from {old} to {new}"


def _channels_op(rng: random.Random, world: World) -> tuple[str, str]:
    channel = rng.choice(("#proj-apollo", "#eng", "#random", "#sales-emea", "#サポート"))
    r = rng.random()
    if r < 0.4:
        return "Add", f"Create Channel - {channel}"
    if r < 0.6:
        return "Delete", f"Delete Channel - {channel}"
    members = ", ".join(_target(rng, world) for _ in range(rng.randrange(1, 6)))
    return "Update", f"Add Members to Channel - {channel}: {members}"


def _recording_op(rng: random.Random, world: World) -> tuple[str, str]:
    what = f"Meeting ID: {_meeting_id(rng)}, Topic: {rng.choice(_TOPICS)}"
    r = rng.random()
    if r < 0.6:
        return "Delete", f"Delete Recording - {what}"
    if r < 0.8:
        return "Recover", f"Recover Recording - {what}"
    return "Update", f"Share Recording - {what}: shared with {_target(rng, world)}"


def _phone_contacts_op(rng: random.Random, world: World) -> tuple[str, str]:
    if rng.random() < 0.3:
        return "Import", f"Import Contacts - {rng.randrange(10, 900)} contacts from contacts.csv"
    name = rng.choice(("Jane Doe", "José Núñez", "山田太郎", "Front desk"))
    phone = f"+1 555 01{rng.randrange(100):02d}"
    return rng.choice(("Add", "Delete")), f"External Contact - {name} ({phone})"


def _webinar_op(rng: random.Random, world: World) -> tuple[str, str]:
    what = f"Webinar ID: {_meeting_id(rng)}, Topic: {rng.choice(_TOPICS)}"
    if rng.random() < 0.5:
        return "Add", f"Schedule Webinar - {what}"
    return "Update", f"Update Webinar - {what}"


def _sub_account_op(rng: random.Random, world: World) -> tuple[str, str]:
    name = rng.choice(("Acme EU", "Acme APAC", "Acme Labs"))
    return rng.choice(("Add", "Update")), f"Sub Account - {name} (owner {_target(rng, world)})"


def _role_op(rng: random.Random, world: World) -> tuple[str, str]:
    role = rng.choice(_CUSTOM_ROLES)
    r = rng.random()
    if r < 0.4:  # the whole privilege list, before and after: well over 2,000 characters
        pool = _ORDINARY_PRIVILEGES
        before = rng.sample(pool, rng.randrange(20, len(pool)))
        after = rng.sample(pool, rng.randrange(20, len(pool)))
        return "Update", (
            f"Update Role {role}  - Privileges: from [{', '.join(before)}] to [{', '.join(after)}]"
        )
    if r < 0.7:
        return "Update", f"Assign Role  - {role}: add members {_target(rng, world)}"
    return rng.choice(("Add", "Delete")), f"Role - {role}"


def _zoom_rooms_op(rng: random.Random, world: World) -> tuple[str, str]:
    room = rng.choice(world.rooms)
    old, new = _on_off(rng)
    if rng.random() < 0.2:
        return "Add", f"Add Room - {room}"
    return "Update", f"Zoom Rooms - {room}: Settings > Meeting: Screen sharing: from {old} to {new}"


_OPERATION_CATEGORIES = (
    ("User", 30), ("User Settings", 15), ("Account", 10), ("Billing", 2), ("IM", 4),
    ("Channels", 6), ("Recording", 12), ("Phone Contacts", 3), ("Webinar", 6),
    ("Sub Account", 1), ("Role", 4), ("Zoom Rooms", 7),
)  # fmt: skip
_OPERATION_TEMPLATES: dict[str, Callable[[random.Random, World], tuple[str, str]]] = {
    "User": _user_op,
    "User Settings": _user_settings_op,
    "Account": _account_op,
    "Billing": _billing_op,
    "IM": _im_op,
    "Channels": _channels_op,
    "Recording": _recording_op,
    "Phone Contacts": _phone_contacts_op,
    "Webinar": _webinar_op,
    "Sub Account": _sub_account_op,
    "Role": _role_op,
    "Zoom Rooms": _zoom_rooms_op,
}


def _poisson(rng: random.Random, mean: float) -> int:
    """How many records a day gets: Poisson around the mean (normal approximation when
    the mean is large enough for it to be indistinguishable)."""
    if mean <= 0:
        return 0
    if mean >= 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


# --------------------------------------------------------------------------- the store

#: Uneven days (`day_spread` > 0): a weekend day gets this share of the mean, a weekday
#: the rest, so that a week averages the mean.
_WEEKEND_FACTOR = 0.3
_WEEKDAY_FACTOR = (7 - 2 * _WEEKEND_FACTOR) / 5
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@dataclass
class DayRecords:
    """The records of one (stream, UTC day), newest first, serialised once."""

    neg_keys: array  # 'q': minus the order key, so ascending means newest first
    blob: bytes  # every record's JSON followed by b","
    offsets: array  # 'q': len(neg_keys) + 1 offsets into blob
    categories: bytes | None  # category code per record (operation logs)
    late: bytes | None  # 1 where the record stays hidden until release_late()
    views: dict[tuple[frozenset[int] | None, bool], DayRecords] = field(default_factory=dict)

    @classmethod
    def build(cls, items: list[tuple[int, bytes, int, int]]) -> DayRecords:
        """From (order key, JSON bytes, category code, late flag) in any order."""
        items.sort(key=lambda item: item[0], reverse=True)
        parts = [item[1] + b"," for item in items]
        late = bytes(item[3] for item in items)
        return cls(
            neg_keys=array("q", [-item[0] for item in items]),
            blob=b"".join(parts),
            offsets=array("q", [0, *accumulate(len(p) for p in parts)]),
            categories=bytes(item[2] for item in items),
            late=late if any(late) else None,
        )

    def __len__(self) -> int:
        return len(self.neg_keys)

    @property
    def nbytes(self) -> int:
        own = len(self.blob) + 18 * len(self.neg_keys)
        views = tuple(self.views.values())  # a snapshot: request threads may add views
        return own + sum(view.nbytes for view in views)

    def record(self, index: int) -> bytes:
        return self.blob[self.offsets[index] : self.offsets[index + 1] - 1]

    def records(self, start: int, stop: int) -> bytes:
        """Records [start, stop) as JSON joined by "," (with a trailing ",")."""
        return self.blob[self.offsets[start] : self.offsets[stop]]

    def key(self, index: int) -> int:
        return -self.neg_keys[index]

    def span(self, lo: int | None, hi: int | None, after_key: int | None) -> tuple[int, int]:
        """Index range of the records with lo <= second < hi that come after `after_key`."""
        nk = self.neg_keys
        start = 0 if hi is None else bisect_right(nk, -(hi << TIE_BITS))
        if after_key is not None:
            start = max(start, bisect_right(nk, -after_key))
        stop = len(nk) if lo is None else bisect_right(nk, -(lo << TIE_BITS))
        return start, stop

    def view(self, codes: frozenset[int] | None, hide_late: bool) -> DayRecords:
        """The records a request sees: only `codes` categories, without hidden late ones.
        Built once per filter (O(records of the day)) and kept with the day."""
        hide_late = hide_late and self.late is not None
        if codes is None and not hide_late:
            return self
        found = self.views.get((codes, hide_late))
        if found is None:
            late, categories = self.late or bytes(len(self)), self.categories or b""
            keep = [
                i
                for i in range(len(self))
                if not (hide_late and late[i]) and (codes is None or categories[i] in codes)
            ]
            found = DayRecords.build([(self.key(i), self.record(i), 0, 0) for i in keep])
            self.views[(codes, hide_late)] = found
        return found


@dataclass(frozen=True)
class Page:
    body: bytes  # the records' JSON joined by "," (no brackets, no trailing comma)
    count: int
    last_key: int | None  # order key of the last record served
    last_record: bytes | None  # its JSON (for pages that repeat it)
    more: bool  # records remain after this page


class Dataset:
    """Every record of both streams: generated lazily per UTC day, plus added ones."""

    def __init__(
        self,
        *,
        seed: int,
        start: datetime,
        now: datetime,
        per_day: Mapping[str, float],
        offset_hours: float,
        late_fraction: float,
        cache_bytes: int,
        day_spread: float = 0.0,
    ) -> None:
        self._seed = seed
        self._per_day = dict(per_day)
        self._day_spread = day_spread
        self._late_fraction = late_fraction
        self._cache_bytes = cache_bytes
        # Generated seconds lie in [first, end): never later than `now`.
        self._first = math.ceil(start.timestamp())
        self._end = math.floor(now.timestamp()) + 1
        population = int(max(25, min(20_000, self._per_day[ACTIVITY_LOGS] / 3)))
        world = World.build(seed, population)
        self._generators = {
            ACTIVITY_LOGS: ActivityGenerator(world, offset_hours),
            OPERATION_LOGS: OperationGenerator(world, offset_hours),
        }
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, int], DayRecords] = OrderedDict()
        self._pending: dict[tuple[str, int], Future[DayRecords]] = {}
        self._versions: dict[tuple[str, int], int] = {}
        self._added: dict[tuple[str, int], list[tuple[int, bytes, int]]] = {}
        self._added_days: dict[str, set[int]] = {stream: set() for stream in STREAMS}
        self._late_hidden = late_fraction > 0

    # ---- what callers see

    def page(
        self,
        stream: str,
        lo: int,
        hi: int,
        codes: frozenset[int] | None,
        after_key: int | None,
        limit: int,
    ) -> Page:
        """Up to `limit` visible records with lo <= second < hi, newest first, after
        `after_key` (exclusive) when given."""
        newest = (hi - 1) // DAY_SECONDS
        if after_key is not None:
            newest = min(newest, key_second(after_key) // DAY_SECONDS)
        chunks: list[bytes] = []
        count, last_key, last_record, more = 0, None, None, False
        for day_number in self._days_desc(stream, newest, lo // DAY_SECONDS):
            day = self._day(stream, day_number).view(codes, self._late_hidden)
            start, stop = day.span(lo, hi, after_key)
            if start >= stop:
                continue
            if count == limit:
                more = True
                break
            take = min(stop - start, limit - count)
            chunks.append(day.records(start, start + take))
            count += take
            last_key, last_record = day.key(start + take - 1), day.record(start + take - 1)
            if start + take < stop:
                more = True
                break
        return Page(b"".join(chunks)[:-1], count, last_key, last_record, more)

    def ground_truth(self, stream: str, lo: int | None, hi: int | None) -> list[dict[str, Any]]:
        """Every visible record with lo <= second < hi, newest first, as served."""
        bounds = self._known_days(stream)
        if bounds is None:
            return []
        newest = bounds[1] if hi is None else (hi - 1) // DAY_SECONDS
        oldest = bounds[0] if lo is None else lo // DAY_SECONDS
        records: list[dict[str, Any]] = []
        for day_number in self._days_desc(stream, newest, oldest):
            day = self._day(stream, day_number).view(None, self._late_hidden)
            start, stop = day.span(lo, hi, None)
            if start < stop:
                records.extend(json.loads(b"[" + day.records(start, stop)[:-1] + b"]"))
        return records

    def count(self, stream: str, lo: int, hi: int) -> int:
        """How many visible records lie in lo <= second < hi (what a chain serves)."""
        total = 0
        for day_number in self._days_desc(stream, (hi - 1) // DAY_SECONDS, lo // DAY_SECONDS):
            start, stop = (
                self._day(stream, day_number).view(None, self._late_hidden).span(lo, hi, None)
            )
            total += max(0, stop - start)
        return total

    def add_records(self, stream: str, records: list[Any], now: int) -> None:
        """Visible from now on. A record whose `time` is not RFC 3339, or that is not a
        JSON object at all (a string, a list, null: served as given, for clients to
        reject), is placed at `now` for ordering and date filters."""
        prepared = []
        for record in records:
            fields: Mapping[str, Any] = record if isinstance(record, Mapping) else {}
            second = parse_record_time(fields.get("time"))
            category = 0
            if stream == OPERATION_LOGS:
                category = _DISPLAY_INDEX.get(fields.get("category_type"), OTHER_CATEGORY)  # type: ignore[arg-type]
            prepared.append((now if second is None else second, _encode(record), category))
        with self._lock:
            for second, raw, category in prepared:
                key = (stream, second // DAY_SECONDS)
                self._added.setdefault(key, []).append((second, raw, category))
                self._added_days[stream].add(key[1])
                self._versions[key] = self._versions.get(key, 0) + 1
                self._cache.pop(key, None)
                self._pending.pop(key, None)

    def extend_to(self, now: datetime) -> None:
        """Generated records now reach `now`: the days between the old and the new end
        are drawn again (from the same per-day seeds, so nothing seen so far changes)."""
        end = math.floor(now.timestamp()) + 1
        with self._lock:
            if end <= self._end:
                return
            old_end, self._end = self._end, end
            for stream in STREAMS:
                for day_number in range((old_end - 1) // DAY_SECONDS, (end - 1) // DAY_SECONDS + 1):
                    key = (stream, day_number)
                    self._versions[key] = self._versions.get(key, 0) + 1
                    self._cache.pop(key, None)
                    self._pending.pop(key, None)

    def release_late(self) -> None:
        with self._lock:
            self._late_hidden = False
            for day in self._cache.values():
                day.views.clear()

    # ---- days

    def day_factor(self, day_number: int) -> float:
        """How busy a UTC day is against the mean (1.0 for every day unless the
        simulator was built with `day_spread`). Uneven days look like a real account's:
        quiet weekends, busier weekdays, and a seeded log-normal spread around them; the
        factors average about 1, and one day's factor is the same for both streams."""
        if self._day_spread <= 0:
            return 1.0
        rng = random.Random(f"{self._seed}/uneven/{day_number}")
        weekend = date.fromordinal(_EPOCH_ORDINAL + day_number).weekday() >= 5
        base = _WEEKEND_FACTOR if weekend else _WEEKDAY_FACTOR
        sigma = self._day_spread
        return base * math.exp(rng.gauss(0.0, sigma) - sigma * sigma / 2)

    def _generated_days(self, stream: str) -> tuple[int, int] | None:
        if self._per_day[stream] <= 0 or self._first >= self._end:
            return None
        return self._first // DAY_SECONDS, (self._end - 1) // DAY_SECONDS

    def _known_days(self, stream: str) -> tuple[int, int] | None:
        with self._lock:
            added = list(self._added_days[stream])
        generated = self._generated_days(stream)
        days = [*added, *(generated or ())]
        return (min(days), max(days)) if days else None

    def _days_desc(self, stream: str, newest: int, oldest: int) -> Iterator[int]:
        """Days in [oldest, newest] that hold records, newest first."""
        with self._lock:
            days = {d for d in self._added_days[stream] if oldest <= d <= newest}
        generated = self._generated_days(stream)
        if generated is not None:
            days.update(range(max(oldest, generated[0]), min(newest, generated[1]) + 1))
        return iter(sorted(days, reverse=True))

    def _day(self, stream: str, day_number: int) -> DayRecords:
        """The day's records, generated by exactly one thread when first needed."""
        key = (stream, day_number)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
            future = self._pending.get(key)
            if future is None:
                future = self._pending[key] = Future()
                version = self._versions.get(key, 0)
                added = list(self._added.get(key, ()))
                owner = True
            else:
                owner = False
        if not owner:
            return future.result()
        try:
            day = self._generate(stream, day_number, added)
        except BaseException as exc:
            with self._lock:
                if self._pending.get(key) is future:
                    del self._pending[key]
            future.set_exception(exc)
            raise
        with self._lock:
            if self._pending.get(key) is future:
                del self._pending[key]
            if self._versions.get(key, 0) == version:  # no add_records meanwhile
                self._cache[key] = day
                self._evict()
        future.set_result(day)
        return day

    def _evict(self) -> None:
        # Keep a few days whatever their size, so that concurrent chains do not thrash.
        total = sum(day.nbytes for day in self._cache.values())
        while total > self._cache_bytes and len(self._cache) > 4:
            _, oldest = self._cache.popitem(last=False)
            total -= oldest.nbytes

    def _generate(
        self, stream: str, day_number: int, added: list[tuple[int, bytes, int]]
    ) -> DayRecords:
        day_start = day_number * DAY_SECONDS
        lo = max(day_start, self._first)
        hi = min(day_start + DAY_SECONDS, self._end)
        items: list[tuple[int, bytes, int, int]] = []
        if self._per_day[stream] > 0 and lo < hi:
            # The whole day is drawn from its own seed, then cut to [first, now): a
            # simulator started later serves the same history plus what happened since,
            # as a real account would.
            rng = random.Random(f"{self._seed}/{stream}/{day_number}")
            count = _poisson(rng, self._per_day[stream] * self.day_factor(day_number))
            generated = self._generators[stream].generate(
                rng, day_start, day_start + DAY_SECONDS, count
            )
            generated.sort(key=lambda g: g[0], reverse=True)  # stable: ties keep their rank
            fraction = self._late_fraction
            for seq, (second, text, category) in enumerate(generated):
                late = 1 if fraction and rng.random() < fraction else 0
                if lo <= second < hi:
                    items.append((order_key(second, seq), text.encode(), category, late))
        base = len(items)
        if base + len(added) > TIE_MASK:
            raise ValueError(f"more than {TIE_MASK} records on one day")
        for j, (second, raw, category) in enumerate(added):
            items.append((order_key(second, base + j), raw, category, 0))
        return DayRecords.build(items)


def _encode(record: Any) -> bytes:
    try:
        return json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escaped, still valid JSON
        return json.dumps(record).encode("ascii")


def day_bounds(day: date, offset_hours: float) -> tuple[int, int]:
    """UTC seconds [start, end) of a calendar date read in a UTC+offset time zone."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=offset_hours)
    return math.floor(start.timestamp()), math.floor(start.timestamp()) + DAY_SECONDS
