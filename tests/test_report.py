"""`zoom-ingest report`: one self-contained HTML page from the local tables."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from known_world import (
    ADMIN,
    CLEAN_OPERATIONS,
    NOW,
    PARAMS,
    USERS,
    clean_activity,
    operation,
    t,
    write,
)
from zoom_ingest import report, scenarios
from zoom_ingest.analytics import DETECTIONS, QUERIES

VOID = {"meta", "br", "img", "input", "link", "hr", "col", "area", "base", "source", "wbr"}
SVG_EMPTY = {"line", "rect", "path", "circle"}


class Structure(HTMLParser):
    """Checks that tags nest and close, and collects what the page refers to."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[str] = []
        self.references: list[str] = []
        self.ids: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name):
                self.references.append(values[name] or "")
        if values.get("id"):
            self.ids.add(values["id"] or "")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)  # <line .../> and friends inside SVG

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Structure:
    structure = Structure()
    structure.feed(page)
    structure.close()
    assert structure.errors == []
    assert structure.stack == []
    return structure


@pytest.fixture(scope="module")
def planted_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    planted = scenarios.standard_scenarios(NOW, admin=ADMIN, users=USERS)
    hostile = operation(
        t("2025-03-12 11:00:00"),
        "User",
        "Update",
        'Change Role  - <script>alert("x")</script>@evil.example: from <b>Member</b> to Admin',
    )
    warehouse = write(
        tmp_path_factory.mktemp("report") / "warehouse",
        clean_activity() + scenarios.records_of(planted, "activity_logs"),
        [*CLEAN_OPERATIONS, *scenarios.records_of(planted, "operation_logs"), hostile],
    )
    output = report.write_report(
        warehouse, warehouse.parent / "out" / "report.html", now=NOW, params=PARAMS
    )
    return output, output.read_text(encoding="utf-8")


def test_the_report_is_one_well_formed_page_with_nothing_to_fetch(
    planted_report: tuple[Path, str],
) -> None:
    path, page = planted_report
    assert path.name == "report.html" and path.is_file()
    structure = parse(page)
    assert structure.tags.count("html") == 1
    assert "script" not in structure.tags  # no JavaScript at all
    # Only in-page links: no CDN, no image or font from the network.
    assert structure.references and all(r.startswith("#") for r in structure.references)
    assert {r[1:] for r in structure.references} <= structure.ids
    assert not re.search(r"url\(|@import|https?://(?!www\.w3\.org/2000/svg)", page)


def test_every_chart_is_valid_svg(planted_report: tuple[Path, str]) -> None:
    _, page = planted_report
    charts = re.findall(r"<svg .*?</svg>", page, flags=re.S)
    assert len(charts) == 5  # sign-ins, active users, records, clients, operations
    for chart in charts:
        root = ElementTree.fromstring(chart)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        bars = root.findall(".//{http://www.w3.org/2000/svg}rect")
        assert bars and all(float(b.get("height", "0")) >= 0 for b in bars)


def test_the_report_shows_the_planted_alerts_and_changes(planted_report: tuple[Path, str]) -> None:
    _, page = planted_report
    text = " ".join(parse(page).text)
    for alert in scenarios.alerts_of(scenarios.standard_scenarios(NOW, admin=ADMIN, users=USERS)):
        assert DETECTIONS[alert.detection].title in text
        assert alert.change in text
    planted = scenarios.alerts_of(scenarios.standard_scenarios(NOW, admin=ADMIN, users=USERS))
    high = sum(1 for a in planted if a.severity == "high")
    assert f"high {high + 1}" in text  # the planted ones, plus the hostile promotion
    for name in (
        "daily_sign_ins",
        "client_versions",
        "role_changes",
        "new_ip_sign_ins",
        "data_freshness",
    ):
        assert QUERIES[name].title in text
    assert scenarios.NEW_ADDRESS in text


def test_values_from_the_data_are_escaped(planted_report: tuple[Path, str]) -> None:
    _, page = planted_report
    assert "<script>" not in page and "<b>Member</b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;@evil.example" in page
    assert "role: &lt;b&gt;Member&lt;/b&gt; → Admin" in page


def test_freshness_warns_when_the_newest_record_is_older_than_a_day(tmp_path: Path) -> None:
    warehouse = write(tmp_path / "warehouse", clean_activity(), CLEAN_OPERATIONS)
    fresh = report.render_report(warehouse, now=NOW)
    assert fresh.count('class="card stale"') == 1  # operation_logs: 27 hours
    stale = report.render_report(warehouse, now=NOW + timedelta(days=2))
    assert stale.count('class="card stale"') == 2
    assert "No activity records on 03-15, 03-16." in stale
    assert "no activity records for 50 hours after 2025-03-14 09:04:00 UTC (none since)" in stale


def test_an_empty_warehouse_still_makes_a_page(tmp_path: Path) -> None:
    page = report.render_report(write(tmp_path / "warehouse"), now=NOW)
    text = " ".join(parse(page).text)
    assert "No detection raised an alert." in text
    assert "No data." in text
    assert "<svg" not in page
