"""The `zoom-ingest` command as a user runs it: a real process, env vars, exit codes."""

from __future__ import annotations

import inspect
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from support.foreground import foreground
from zoom_ingest import exit_codes
from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.simulated import environment
from zoom_ingest.simulator import Simulator
from zoom_ingest.tables import ACTIVITY_LOGS, OPERATION_LOGS, UTC

FAKE_SECRET = "ZZ-FAKE-CLIENT-SECRET-7f3a"


def zoom_ingest(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ZOOM_",))}
    return subprocess.run(
        [sys.executable, "-m", "zoom_ingest.cli", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(seed=21, days=5, activity_per_day=120, operation_per_day=30) as s:
        yield s


def sim_env(sim: Simulator) -> dict[str, str]:
    return environment(sim)


def test_run_with_only_env_vars_then_status(sim, tmp_path):
    start = (datetime.now(UTC) - timedelta(days=4)).date().isoformat()
    warehouse = tmp_path / "wh"
    done = zoom_ingest(
        "run",
        "--warehouse",
        str(warehouse),
        "--backfill-start",
        start,
        "--requests-per-second",
        "100",
        env=sim_env(sim),
    )
    assert done.returncode == 0, done.stderr
    assert "activity_logs" in done.stdout and "succeeded" in done.stdout
    engine = LocalEngine(warehouse)
    assert engine.read_table(ACTIVITY_LOGS).num_rows > 0
    assert engine.read_table(OPERATION_LOGS).num_rows > 0
    assert sim.client_secret not in done.stdout + done.stderr

    status = zoom_ingest("status", "--warehouse", str(warehouse))
    assert status.returncode == 0, status.stderr
    for word in ("activity_logs", "operation_logs", "Checkpoints", "Latest runs"):
        assert word in status.stdout


@pytest.mark.parametrize(
    ("args", "setting"),
    [
        (["--category-type", "everything"], "category_type"),
        (["--backfill-start", "2999-01-01"], "backfill_start"),
        (["--backfill-start", "01/02/2026"], "backfill_start"),
        (["--streams", "meetings"], "streams"),
        (["--lookback", "soon"], "lookback"),
        (["--mode", "full"], "mode"),
    ],
)
def test_bad_settings_exit_2_with_one_line_and_no_call(sim, tmp_path, args, setting):
    done = zoom_ingest("run", "--warehouse", str(tmp_path / "wh"), *args, env=sim_env(sim))
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and setting in lines[0]
    assert sim.stats.calls == 0 and sim.stats.token_requests == 0


def test_plain_http_to_a_remote_host_is_refused(sim, tmp_path):
    env = {**sim_env(sim), "ZOOM_API_URL": "http://api.zoom.us/v2"}
    done = zoom_ingest("run", "--warehouse", str(tmp_path / "wh"), env=env)
    assert done.returncode == 2
    assert "api_url" in done.stderr and "loopback" in done.stderr


def test_missing_secret_names_the_env_var(sim, tmp_path):
    env = {k: v for k, v in sim_env(sim).items() if k != "ZOOM_CLIENT_SECRET"}
    done = zoom_ingest("run", "--warehouse", str(tmp_path / "wh"), env=env)
    assert done.returncode == 2
    assert "ZOOM_CLIENT_SECRET" in done.stderr


def test_bad_credentials_fail_clearly_without_leaking(sim, tmp_path):
    env = {**sim_env(sim), "ZOOM_CLIENT_SECRET": FAKE_SECRET}
    start = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    done = zoom_ingest(
        "run", "--warehouse", str(tmp_path / "wh"), "--backfill-start", start, env=env
    )
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert "ZOOM_CLIENT_SECRET" in output or "ZOOM_CLIENT_ID" in output
    assert FAKE_SECRET not in output


def test_a_second_run_on_the_same_warehouse_exits_4(sim, tmp_path):
    warehouse = tmp_path / "wh"
    engine = LocalEngine(warehouse)
    engine.ensure_tables()
    with engine.run_lock():
        done = zoom_ingest("run", "--warehouse", str(warehouse), env=sim_env(sim))
    assert done.returncode == 4
    assert "warehouse" in done.stderr.lower() or str(warehouse) in done.stderr
    assert sim.stats.calls == 0


def test_a_table_of_another_schema_in_the_warehouse_exits_2_before_any_call(sim, tmp_path):
    """A destination that does not match is the user's setting to fix: exit 2 (as from
    every entry point), one line naming the table, nothing called, nothing written."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    foreign = tmp_path / "wh" / "operation_logs"
    write_deltalake(str(foreign), pa.table({"lw_id": ["x"], "detail": ["made elsewhere"]}))
    done = zoom_ingest("run", "--warehouse", str(tmp_path / "wh"), env=sim_env(sim))
    assert done.returncode == exit_codes.BAD_SETTING == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    [error] = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "operation_logs" in error and "different schema" in error, error
    assert sim.stats.calls == 0
    assert DeltaTable(str(foreign)).version() == 0  # left as it was


def test_demo_runs_end_to_end(tmp_path: Path):
    warehouse = tmp_path / "demo"
    done = zoom_ingest(
        "demo",
        "--warehouse",
        str(warehouse),
        "--days",
        "3",
        "--activity-per-day",
        "50",
        "--operation-per-day",
        "10",
    )
    assert done.returncode == 0, done.stderr
    assert "simulator" in done.stdout
    assert "activity_logs" in done.stdout and "inserted" in done.stdout
    assert LocalEngine(warehouse).read_table(ACTIVITY_LOGS).num_rows > 0


def test_query_and_report_on_the_demo_warehouse(tmp_path: Path):
    warehouse = tmp_path / "demo"
    demo = zoom_ingest(
        "demo",
        "--warehouse",
        str(warehouse),
        "--days",
        "10",
        "--activity-per-day",
        "40",
        "--operation-per-day",
        "10",
    )
    assert demo.returncode == 0, demo.stderr
    assert "planted security scenarios" in demo.stdout
    assert "zoom-ingest report" in demo.stdout and "zoom-ingest query" in demo.stdout

    sql = "SELECT type, count(*) AS n FROM activity_logs GROUP BY type ORDER BY type"
    as_csv = zoom_ingest("query", "--warehouse", str(warehouse), "--format", "csv", sql)
    assert as_csv.returncode == 0, as_csv.stderr
    lines = as_csv.stdout.strip().splitlines()
    assert lines[0] == "type,n"
    counts = dict(line.split(",") for line in lines[1:])
    engine = LocalEngine(warehouse)
    types = engine.read_table(ACTIVITY_LOGS)["type"].to_pylist()
    assert counts == {t: str(types.count(t)) for t in set(types)}

    as_json = zoom_ingest(
        "query", "--warehouse", str(warehouse), "--format", "json", "--detections"
    )
    assert as_json.returncode == 0, as_json.stderr
    alerts = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert {"privileged_role_granted", "sign_in_security_disabled", "ip_sign_in_burst"} <= {
        a["detection"] for a in alerts
    }

    bad = zoom_ingest("query", "--warehouse", str(warehouse), "SELEC nonsense")
    assert bad.returncode == 1 and "error" in bad.stderr

    report = zoom_ingest(
        "report", "--warehouse", str(warehouse), "--output", str(tmp_path / "r.html")
    )
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "r.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html
    # Self-contained: nothing to fetch (an SVG's xmlns is a name, not a fetch).
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<script" not in html


def test_reading_tables_never_aborts_the_process_at_exit(sim, tmp_path):
    """delta-rs' own pyarrow filesystem could abort the interpreter at exit (SIGABRT)
    after a read; reads go through a native filesystem. Probabilistic, hence a loop."""
    start = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    warehouse = str(tmp_path / "wh")
    env = sim_env(sim)
    assert (
        zoom_ingest("run", "--warehouse", warehouse, "--backfill-start", start, env=env).returncode
        == 0
    )
    codes = [zoom_ingest("status", "--warehouse", warehouse).returncode for _ in range(8)]
    assert codes == [0] * 8


def test_simulate_prints_lines_a_shell_uses_as_they_are(tmp_path):
    """Paste what `zoom-ingest simulate` prints into a shell, then `zoom-ingest run`: it
    reaches the simulator (on 127.0.0.1) with no other setting."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ZOOM_")}
    with foreground(
        [sys.executable, "-m", "zoom_ingest.cli", "simulate", "--seed", "5", "--days", "2",
         "--activity-per-day", "60", "--operation-per-day", "15"],
        env=base,
    ) as process:  # fmt: skip
        assert process.stdout is not None
        printed = []
        for _ in range(20):
            line = process.stdout.readline()
            if not line or line.startswith("#"):
                break
            printed.append(line.rstrip("\n"))
        lines = "\n".join(printed)
        assert printed and all(line.startswith("export ZOOM_") for line in printed)

        shell = subprocess.run(
            ["bash", "-c", f"{lines}\nenv"], env=base, capture_output=True, text=True, timeout=30
        )
        assert shell.returncode == 0, shell.stderr
        arrived = dict(
            line.split("=", 1) for line in shell.stdout.splitlines() if line.startswith("ZOOM_")
        )
        expected = Simulator(seed=5)  # credentials are the seed's; never started
        assert {k: arrived[k] for k in ("ZOOM_ACCOUNT_ID", "ZOOM_CLIENT_ID", "ZOOM_CLIENT_SECRET")}
        assert arrived["ZOOM_ACCOUNT_ID"] == expected.account_id
        assert arrived["ZOOM_CLIENT_ID"] == expected.client_id
        assert arrived["ZOOM_CLIENT_SECRET"] == expected.client_secret
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v2", arrived["ZOOM_API_URL"])
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/oauth/token", arrived["ZOOM_OAUTH_URL"])

        warehouse = tmp_path / "wh"
        start = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
        run = subprocess.run(
            ["bash", "-c", f'{lines}\nexec "$0" -m zoom_ingest.cli run "$@"', sys.executable,
             "--warehouse", str(warehouse), "--backfill-start", start],
            env=base,
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert LocalEngine(warehouse).read_table(ACTIVITY_LOGS).num_rows > 0
        assert LocalEngine(warehouse).read_table(OPERATION_LOGS).num_rows > 0
        assert expected.client_secret not in run.stdout + run.stderr

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


def test_one_simulator_command_line_with_the_simulator_defaults():
    from zoom_ingest.cli import main
    from zoom_ingest.simulated import simulate

    assert main.commands["simulate"] is simulate
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(Simulator).parameters.items()
    }
    options = [p for p in simulate.params if p.name != "help"]
    assert options and all(p.default == defaults[p.name] for p in options)
    assert {p.name: p.default for p in options}["activity_per_day"] == 200

    module_main = subprocess.run(
        [sys.executable, "-m", "zoom_ingest.simulator", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    command = zoom_ingest("simulate", "--help")
    assert command.returncode == 0
    usage, _, text = module_main.stdout.partition("\n")
    assert usage == "Usage: python -m zoom_ingest.simulator [OPTIONS]"
    assert command.stdout.partition("\n")[2] == text  # the same options and help


def test_terminal_output_escapes_control_characters_and_csv_json_stay_faithful(
    tmp_path: Path,
):
    import pyarrow as pa

    from known_world import NOW, activity, write
    from zoom_ingest.tables import RUNS

    hostile = "evil\x1b[2J\x1b]0;pwned\x07\x00\r\nend[bold]\\x1b"
    warehouse = write(tmp_path / "wh", [activity(NOW, "a@example.com", "192.0.2.1",
                                                 client=("Browser", hostile))])  # fmt: skip
    run_row = {"run_id": "r1", "account_id": "acct", "stream": hostile, "status": "running",
               "started_at": NOW}  # fmt: skip
    LocalEngine(warehouse).append(RUNS, pa.Table.from_pylist([run_row], schema=RUNS.schema))
    escaped = "evil\\x1b[2J\\x1b]0;pwned\\x07\\x00\\r\\nend[bold]\\\\x1b"
    sql = "SELECT version FROM activity_logs"

    for output, shown in (
        # The query folds a long value across lines (joined back here); status cuts it.
        (zoom_ingest("query", "--warehouse", str(warehouse), sql), escaped),
        (zoom_ingest("status", "--warehouse", str(warehouse)), escaped[:24]),
    ):
        assert output.returncode == 0, output.stderr
        text = output.stdout
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", text), repr(text)
        assert shown in re.sub(r"\s*│\s*\n\s*│\s*", "", text), text

    as_csv = zoom_ingest("query", "--warehouse", str(warehouse), "--format", "csv", sql)
    assert as_csv.returncode == 0 and hostile.replace("\r\n", "\n") in as_csv.stdout.replace(
        "\r\n", "\n"
    )
    as_json = zoom_ingest("query", "--warehouse", str(warehouse), "--format", "json", sql)
    assert [json.loads(line) for line in as_json.stdout.splitlines()] == [{"version": hostile}]
