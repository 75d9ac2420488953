"""The zoom package's stream registry is the one list of reports: every consumer takes
its streams from it, and a third report is one `Stream` entry plus its `TableSpec`."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import requests

import zoom_ingest
from zoom_ingest import exit_codes, options
from zoom_ingest import settings as settings_module
from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.job import run, zoom_client_config
from zoom_ingest.plan import plan_stream
from zoom_ingest.settings import Secret, Settings, SettingsError, parse_streams
from zoom_ingest.simulator import STREAMS as SIMULATED_STREAMS
from zoom_ingest.simulator.oauth import CLASSIC_SCOPE
from zoom_ingest.simulator.routes import ENDPOINTS
from zoom_ingest.tables import ALL_TABLES, LOG_TABLES, TIMESTAMP, UTC, TableSpec
from zoom_ingest.zoom import STREAMS_BY_NAME, RateLimiter, Stream, ZoomClient, stream_names
from zoom_ingest.zoom.rules import CATEGORY_TYPES, PAGE_SIZE

SRC = Path(zoom_ingest.__file__).parent

# -- one list ----------------------------------------------------------------------------


def test_settings_take_their_streams_from_the_registry() -> None:
    assert stream_names() == tuple(STREAMS_BY_NAME) == ("activity_logs", "operation_logs")
    assert stream_names() == settings_module.STREAMS
    # Zoom's category types: checked where settings are read (settings.py knows no Zoom).
    assert options.BY_NAME["category_type"].choices is CATEGORY_TYPES
    made = Settings(account_id="a", client_id="c", client_secret=Secret("s"))
    assert made.streams == stream_names()


def test_every_stream_fills_the_log_table_of_its_name() -> None:
    assert set(LOG_TABLES) == set(STREAMS_BY_NAME)
    for name, stream in STREAMS_BY_NAME.items():
        assert stream.name == name
        assert stream.spec is LOG_TABLES[name] is ALL_TABLES[name]
        assert stream.cursor_field == stream.spec.record_fields[0] == stream.spec.cluster_by


def test_the_simulator_serves_every_stream_as_the_registry_declares_it() -> None:
    # The simulator models Zoom on its own (paths, records keys, scopes from Zoom's docs),
    # so this checks the registry against an independent reading, not against itself.
    assert set(SIMULATED_STREAMS) == set(STREAMS_BY_NAME)
    for stream in STREAMS_BY_NAME.values():
        endpoint = ENDPOINTS["/v2" + stream.path]
        assert endpoint.stream == stream.name
        assert endpoint.records_key == stream.records_key
        assert stream.scopes == (endpoint.scope, CLASSIC_SCOPE)


def _stream_name_lists(tree: ast.AST, names: set[str]) -> Iterator[int]:
    """Lines of tuple/list/set literals holding two or more stream names, and of strings
    that join stream names with commas."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            found = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            if len(names.intersection(v for v in found if isinstance(v, str))) >= 2:
                yield node.lineno
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            parts = {p.strip() for p in node.value.split(",")}
            if len(parts & names) >= 2:
                yield node.lineno


def test_no_module_but_the_registry_lists_the_streams() -> None:
    names = set(STREAMS_BY_NAME)
    found = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        # The simulator is the stand-in for Zoom: it keeps its own list on purpose
        # (simulator/data.py says why; the test above holds it to the registry).
        if relative.startswith("simulator/"):
            continue
        found += [
            f"{relative}:{line}" for line in _stream_name_lists(ast.parse(path.read_text()), names)
        ]
    assert found == []


# -- a third report ------------------------------------------------------------------------

WEBINAR_LOGS = TableSpec(
    name="webinar_logs",
    schema=pa.schema(
        [
            pa.field("lw_id", pa.string(), nullable=False),
            pa.field("time", TIMESTAMP, nullable=False),
            pa.field("topic", pa.string()),
        ]
    ),
    key=("lw_id",),
    cluster_by="time",
    record_fields=("time", "topic"),
    comment="A made-up third report",
    column_comments={"lw_id": "id", "time": "when", "topic": "what"},
)
WEBINAR_STREAM = Stream(
    name="webinar_logs",
    path="/report/webinarlogs",
    records_key="webinar_logs",
    spec=WEBINAR_LOGS,
    scopes=("report:read:webinar_logs:admin", "report:read:admin"),
    takes_category_type=True,
)
NOW = datetime.now(UTC).replace(microsecond=0)
#: One record a day for the last four days, newest first as Zoom serves them.
RECORDS = [
    {"time": (NOW - timedelta(days=d, hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"), "topic": f"t{d}"}
    for d in range(4)
]


@pytest.fixture
def third_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """The third report registered the way the code would: its table spec among the log
    tables, and one entry in the stream registry. Nothing else is touched."""
    monkeypatch.setitem(LOG_TABLES, WEBINAR_LOGS.name, WEBINAR_LOGS)
    monkeypatch.setitem(ALL_TABLES, WEBINAR_LOGS.name, WEBINAR_LOGS)
    monkeypatch.setitem(STREAMS_BY_NAME, WEBINAR_STREAM.name, WEBINAR_STREAM)


class WebinarZoom(requests.Session):
    """Zoom with the third report: a token, and RECORDS by their UTC date."""

    def __init__(self) -> None:
        super().__init__()
        self.gets: list[dict[str, Any]] = []

    def post(self, url: str | bytes, data: Any = None, json: Any = None, **kw: Any) -> Any:
        return _response({"access_token": "tok-webinar", "expires_in": 3600})

    def get(self, url: str | bytes, **kw: Any) -> Any:
        self.gets.append({"url": url, **kw})
        assert str(url).endswith(WEBINAR_STREAM.path), url
        params = kw["params"]
        first, last = date.fromisoformat(params["from"]), date.fromisoformat(params["to"])
        page = [r for r in RECORDS if first <= date.fromisoformat(r["time"][:10]) <= last]
        return _response({"webinar_logs": page, "next_page_token": ""})


def _response(body: dict[str, Any]) -> requests.Response:
    made = requests.Response()
    made.status_code = 200
    made._content = json.dumps(body).encode()
    made.headers["Content-Type"] = "application/json"
    return made


@pytest.mark.usefixtures("third_report")
def test_a_third_report_is_one_stream_entry_plus_its_table_spec(tmp_path: Path) -> None:
    # Settings: allowed by name, and part of the default "every stream".
    settings = Settings(
        account_id="acct-3",
        client_id="client-3",
        client_secret=Secret("secret-3"),
        api_url="https://api.zoom.test/v2",
        oauth_url="https://zoom.test/oauth/token",
        streams=parse_streams("webinar_logs"),
        category_type="role",
        backfill_start=(NOW - timedelta(days=5)).date(),
        requests_per_second=1000,
    )
    assert "webinar_logs" in settings.with_changes(streams=stream_names()).streams
    assert Settings(account_id="a", client_id="c", client_secret=Secret("s")).streams[-1] == (
        "webinar_logs"
    )
    # Planning: windows from the backfill start to today.
    plan = plan_stream(settings, "webinar_logs", None, NOW)
    assert plan.mode == "backfill" and plan.windows
    oldest = date.fromisoformat(RECORDS[-1]["time"][:10])
    assert plan.windows[0].from_date <= oldest and plan.windows[-1].to_date >= NOW.date()

    # The job: fetched, merged into its own table, checkpointed.
    session = WebinarZoom()
    engine = LocalEngine(tmp_path)
    client = ZoomClient(zoom_client_config(settings), session=session, limiter=RateLimiter(1000))
    summary = run(settings, engine, progress=False, client=client, now=NOW)
    assert summary.exit_code == exit_codes.OK, summary
    stored = engine.read_table(WEBINAR_LOGS)
    assert sorted(stored["topic"].to_pylist()) == sorted(r["topic"] for r in RECORDS)
    assert set(engine.read_checkpoints("acct-3")) == {"webinar_logs"}
    sent = session.gets[0]["params"]
    assert sent["page_size"] == PAGE_SIZE and sent["category_type"] == "role"


@pytest.mark.usefixtures("third_report")
def test_a_stream_left_out_of_the_registry_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"unknown stream 'meeting_logs'.*webinar_logs"):
        Settings(
            account_id="a",
            client_id="c",
            client_secret=Secret("s"),
            streams=("meeting_logs",),
        )
