"""The one parse of operation_detail: the view operation_changes, on every shape the
detections read, on the public corpus of real records, and the simulator's shapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from known_world import NOW, operation, t, write
from zoom_ingest import analytics

ANA = "ana@example.org"
ROOT = Path(__file__).resolve().parents[1]
#: shared/ sits beside the repository (its main clone, or the folder of worktrees).
CORPORA = [p / "shared" / "zoom-corpus" / "records.jsonl" for p in (ROOT.parent, ROOT.parents[1])]
COLUMNS = ("section", "target_type", "target", "setting", "old_value", "new_value", "value_kind")


def parsed(tmp_path: Path, records: list[dict[str, str]]) -> list[dict[str, Any]]:
    warehouse = write(tmp_path / "warehouse", operation_records=records)
    with analytics.LocalWarehouse(warehouse, now=NOW) as session:
        return session.query("SELECT * FROM operation_changes ORDER BY time, change_no").to_pylist()


def changes(tmp_path: Path, category: str, detail: str) -> list[tuple[Any, ...]]:
    rows = parsed(tmp_path, [operation(t("2025-03-12 10:00:00"), category, "Update", detail)])
    if [r["value_kind"] for r in rows] != ["none"]:  # none: the one row of a change-less detail
        assert [r["change_no"] for r in rows] == list(range(1, len(rows) + 1))
    return [tuple(r[c] for c in COLUMNS) for r in rows]


@pytest.mark.parametrize(
    ("category", "detail", "expected"),
    [
        (
            "Account",
            "Security  - Sign in with Two-Factor Authentication: from On to Off",
            [("Security", None, None, "Sign in with Two-Factor Authentication", "On", "Off",
              "from_to")],
        ),
        (
            "Account",
            "Sign-In Password Requirement  - Have at least 1 letter: from On to Off - Have at "
            "least 1 number: from On to Off - Minimum password length: from 8 to 12",
            [
                ("Sign-In Password Requirement", None, None, "Have at least 1 letter", "On",
                 "Off", "from_to"),
                ("Sign-In Password Requirement", None, None, "Have at least 1 number", "On",
                 "Off", "from_to"),
                ("Sign-In Password Requirement", None, None, "Minimum password length", "8",
                 "12", "from_to"),
            ],
        ),
        (
            "Account",
            "Security  - Sign in with Two-Factor Authentication: from On to Off - "
            "Automatically sign users out after a specified time: from On to Off",
            [
                ("Security", None, None, "Sign in with Two-Factor Authentication", "On", "Off",
                 "from_to"),
                ("Security", None, None, "Automatically sign users out after a specified time",
                 "On", "Off", "from_to"),
            ],
        ),
        (
            "User Group",
            "Edit Group Sales EMEA  - Personal Meeting ID (PMI) Passcode: from On to Off",
            [("Edit Group", "group", "Sales EMEA", "Personal Meeting ID (PMI) Passcode", "On",
              "Off", "from_to")],
        ),
        (
            "User",
            f"Update User {ANA}  - User Role: from Member to Admin",
            [("Update User", "user", ANA, "User Role", "Member", "Admin", "from_to")],
        ),
        (
            "User",
            f"Change Role  - {ANA}: from Member to Co-Owner",
            [("Change Role", "user", ANA, "Role", "Member", "Co-Owner", "from_to")],
        ),
        (
            "User",
            f"Add User {ANA}  - User Type: Basic - Department: Finance",
            [
                ("Add User", "user", ANA, "User Type", None, "Basic", "value"),
                ("Add User", "user", ANA, "Department", None, "Finance", "value"),
            ],
        ),
        (
            "User",
            f"Edit User {ANA}  - Job Title: set to Contractor",
            [("Edit User", "user", ANA, "Job Title", None, "Contractor", "set_to")],
        ),
        (  # a section name with " - " in it
            "Account",
            "Quality Settings - Audio  - Receive Bitrate: from 20 to 200",
            [("Quality Settings - Audio", None, None, "Receive Bitrate", "20", "200", "from_to")],
        ),
        (  # a value with " - " in it
            "Team Chat",
            "Search Chat  - Search Date: 03/02/2023 - 03/30/2023",
            [("Search Chat", None, None, "Search Date", None, "03/02/2023 - 03/30/2023",
              "value")],
        ),
        (  # an empty "set to", then a change
            "Channels",
            "Update a Channel TestGroupChannel1  - Cloud Storage Retention: set to  - Name: "
            "from TestGroup1 to TestGroupChannel1",
            [
                ("Update a Channel", "channel", "TestGroupChannel1", "Cloud Storage Retention",
                 None, "", "set_to"),
                ("Update a Channel", "channel", "TestGroupChannel1", "Name", "TestGroup1",
                 "TestGroupChannel1", "from_to"),
            ],
        ),
        (  # older forms
            "User Settings",
            f"Update User Settings - {ANA}: Meeting > Security: Waiting room: from Off to On",
            [("Update User Settings: Meeting > Security", "user", ANA, "Waiting room", "Off",
              "On", "from_to")],
        ),
        (
            "Account",
            "Account Settings - Security > Sign-in Methods: Allow users to sign in with Google: "
            "from Off to On",
            [("Account Settings: Security > Sign-in Methods", None, None,
              "Allow users to sign in with Google", "Off", "On", "from_to")],
        ),
        (
            "Account",
            "Change account setting Cloud Recording from ON to OFF",
            [("Account Settings", None, None, "Cloud Recording", "ON", "OFF", "from_to")],
        ),
        # a head only, a free sentence: one row without a change
        ("User", f"Activate User {ANA} ", [("Activate User", "user", ANA, None, None, None,
                                            "none")]),
        ("Recording", "Delete cloud recording for meeting 11122223333", [
            ("Delete cloud recording for meeting 11122223333", None, None, None, None, None,
             "none"),
        ]),
    ],
)  # fmt: skip
def test_every_shape_parses_into_one_row_per_change(
    tmp_path: Path, category: str, detail: str, expected: list[tuple[Any, ...]]
) -> None:
    assert changes(tmp_path, category, detail) == expected


def test_turned_off_and_on_compare_case_insensitively(tmp_path: Path) -> None:
    detail = (
        "Security  - A: from ON to OFF - B: from Disabled to Enabled - C: from 8 to 6 - "
        "D: set to Never - E: from Off to Not required"
    )
    rows = parsed(tmp_path, [operation(t("2025-03-12 10:00:00"), "Account", "Update", detail)])
    assert [(r["setting"], r["turned_off"], r["turned_on"]) for r in rows] == [
        ("A", True, False),
        ("B", False, True),
        ("C", False, False),
        ("D", True, False),
        ("E", False, False),
    ]
    assert {r["level"] for r in rows} == {"account"}


def test_changed_settings_holds_each_change_of_a_settings_value_and_nothing_else(
    tmp_path: Path,
) -> None:
    """The view the "setting turned off" detections share: the rows of operation_changes
    that change a setting's value (from/to or set to, a new value other than the old one
    ignoring case), with the setting and section in lower case; every turned_off row."""
    records = [
        operation(
            t("2025-03-12 10:00:00"),
            "Account",
            "Update",
            "Security  - A: from ON to OFF - B: from Disabled to Enabled - C: from 8 to 6 - "
            "D: set to Never - E: from Off to off - F: from On to ON",
        ),
        operation(t("2025-03-12 10:01:00"), "User", "Add", f"Add User {ANA}  - User Type: Basic"),
        operation(t("2025-03-12 10:02:00"), "User", "Delete", f"Delete User {ANA}"),
        operation(
            t("2025-03-12 10:03:00"),
            "User Settings",
            "Update",
            f"Update User Settings - {ANA}: Meeting > Security: Meeting Passcode: from On to Off",
        ),
    ]
    warehouse = write(tmp_path / "warehouse", operation_records=records)
    order = " ORDER BY time, change_no"
    with analytics.LocalWarehouse(warehouse, now=NOW) as session:
        every = session.query("SELECT * FROM operation_changes" + order).to_pylist()
        changed = session.query("SELECT * FROM changed_settings" + order).to_pylist()

    def lower(text: str | None) -> str | None:
        return text.lower() if text is not None else None

    expected = [
        {**row, "setting_lower": lower(row["setting"]), "section_lower": lower(row["section"])}
        for row in every
        if row["value_kind"] in ("from_to", "set_to")
        and row["setting"] is not None
        and lower(row["old_value"] or "") != lower(row["new_value"])
    ]
    assert changed == expected
    assert [r["setting"] for r in changed] == ["A", "B", "C", "D", "Meeting Passcode"]
    assert changed[-1]["section_lower"] == "update user settings: meeting > security"
    turned_off = [r for r in every if r["turned_off"]]
    assert len(turned_off) == 3
    assert [r["lw_id"] for r in turned_off] == [r["lw_id"] for r in changed if r["turned_off"]]


def corpus_operations() -> list[dict[str, Any]]:
    corpus = next((p for p in CORPORA if p.is_file()), None)
    if corpus is None:
        pytest.skip(f"the public record corpus is at none of {', '.join(map(str, CORPORA))}")
    lines = corpus.read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]
    return [e for e in entries if e["stream"] == "operation_logs"]


def test_the_public_corpus_goes_through_the_parser(tmp_path: Path) -> None:
    """Real records written by others: every one parses (no error, no lost record), and the
    shapes with changes give the parts a reader would name."""
    entries = corpus_operations()
    records = []
    for i, entry in enumerate(entries):  # the corpus keeps its own times; pin them here
        record = dict(entry["record"])
        record["time"] = f"2025-03-12T10:{i // 60:02d}:{i % 60:02d}Z"
        records.append(record)
    rows = parsed(tmp_path, records)
    by_detail: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_detail.setdefault(row["operation_detail"], []).append(row)
    channel = by_detail[
        "Update a Channel TestGroupChannel1  - Cloud Storage Retention: set to  - "
        "Name: from TestGroup1 to TestGroupChannel1"
    ]
    assert [(r["setting"], r["old_value"], r["new_value"]) for r in channel] == [
        ("Cloud Storage Retention", None, ""),
        ("Name", "TestGroup1", "TestGroupChannel1"),
    ]
    [search] = by_detail["Search Chat  - Search Date: 03/02/2023 - 03/30/2023"]
    assert search["new_value"] == "03/02/2023 - 03/30/2023"
    [elastic] = by_detail["Change account setting Cloud Recording from ON to OFF"]
    assert (elastic["setting"], elastic["turned_off"]) == ("Cloud Recording", True)
    [deleted] = by_detail["delete user - user2@example.com"]
    assert deleted["target"] == "user2@example.com"
    # Every record has its rows; free sentences and heads one, without a change.
    assert set(by_detail) == {e["record"]["operation_detail"] for e in entries}
    [activated] = by_detail["Activate User sjkfhdsf@jdfgkhgd.com "]
    assert (activated["change_no"], activated["target"]) == (0, "sjkfhdsf@jdfgkhgd.com")
    assert all(r["value_kind"] == "none" for r in by_detail["test"])


def test_the_simulator_writes_every_shape() -> None:
    import random
    import re

    from zoom_ingest.simulator.data import OperationGenerator, World

    generated = OperationGenerator(World.build(7, 200), 0).generate(
        random.Random(3), 0, 30 * 86_400, 3000
    )
    details = [json.loads(text)["operation_detail"] for _, text, _ in generated]
    shapes = {
        "section, one change": r"[A-Z][^:]*?  - [^:]+: from \w+ to \w+",
        "several changes": r"[^:]+  - [^:]+: from \S+ to \S+ - [^:]+: from \S+ to \S+",
        "a group": r"Edit Group [^:]+  - [^:]+: from \w+ to \w+",
        "a user's role": r"Update User \S+@\S+  - User Role: from [\w -]+ to [\w -]+",
        "change role": r"Change Role  - \S+@\S+: from [\w -]+ to [\w -]+",
        "values": r"Add User \S+@\S+  - User Type: \w+ - Department: \w+",
        "set to": r"Edit User \S+@\S+  - Job Title: set to [\w ]+",
    }
    for shape, pattern in shapes.items():
        assert any(re.fullmatch(pattern, d) for d in details), shape
