"""The catalogue of bad settings, and the check that each is refused with exit 2
before Zoom is called."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zoom_ingest.simulator import Simulator

from .processes import EXIT_SETTINGS, cli_env, zoom_ingest_command


@dataclass(frozen=True)
class BadSetting:
    """A wrong value for one setting, given as the CLI user would give it."""

    setting: str  # the setting the one-line message must name
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    allowed: str = ""  # words from the "what is allowed" part of the message

    @property
    def label(self) -> str:
        given = " ".join(self.args) or " ".join(f"{k}={v!r}" for k, v in self.env)
        return f"{self.setting}: {given}"


#: At least one wrong value for every setting of `zoom-ingest run` (tests check that).
BAD_SETTINGS: tuple[BadSetting, ...] = (
    BadSetting("account_id", env=(("ZOOM_ACCOUNT_ID", " "),), allowed="ZOOM_ACCOUNT_ID"),
    BadSetting("client_id", env=(("ZOOM_CLIENT_ID", ""),), allowed="ZOOM_CLIENT_ID"),
    BadSetting("client_secret", env=(("ZOOM_CLIENT_SECRET", ""),), allowed="ZOOM_CLIENT_SECRET"),
    BadSetting("client_secret", env=(("ZOOM_CLIENT_SECRET", "   "),), allowed="ZOOM_CLIENT_SECRET"),
    BadSetting("api_url", ("--api-url", "http://api.zoom.us/v2"), allowed="loopback"),
    BadSetting("api_url", ("--api-url", "api.zoom.us/v2"), allowed="http"),
    BadSetting("oauth_url", ("--oauth-url", "http://zoom.us/oauth/token"), allowed="loopback"),
    BadSetting("oauth_url", ("--oauth-url", "ftp://zoom.us/oauth/token"), allowed="http"),
    BadSetting("streams", ("--streams", "meetings"), allowed="operation_logs"),
    BadSetting("streams", ("--streams", " , "), allowed="activity_logs"),
    BadSetting("category_type", ("--category-type", "everything"), allowed="user_settings"),
    BadSetting("backfill_start", ("--backfill-start", "2999-01-01"), allowed="past"),
    BadSetting("backfill_start", ("--backfill-start", "01/02/2026"), allowed="YYYY-MM-DD"),
    BadSetting("lookback", ("--lookback", "soon"), allowed="90m"),
    BadSetting("lookback", ("--lookback", "40d"), allowed="31 days"),
    BadSetting("mode", ("--mode", "full"), allowed="reconcile"),
    BadSetting("reconcile_days", ("--reconcile-days", "0"), allowed="180"),
    BadSetting("reconcile_days", ("--reconcile-days", "three"), allowed="integer"),
    BadSetting("requests_per_second", ("--requests-per-second", "0"), allowed="0.1"),
    BadSetting("requests_per_second", ("--requests-per-second", "fast"), allowed="float"),
    BadSetting("concurrency", ("--concurrency", "0"), allowed="256"),
    BadSetting("window_days", ("--window-days", "29"), allowed="28"),
    BadSetting("window_days", env=(("ZOOM_INGEST_WINDOW_DAYS", "weekly"),), allowed="integer"),
    BadSetting("batch_rows", ("--batch-rows", "0"), allowed="outside 1"),
    BadSetting("timeout", ("--timeout", "0"), allowed="600"),
    BadSetting("max_retries", ("--max-retries", "-1"), allowed="100"),
    BadSetting("request_deadline", ("--request-deadline", "0"), allowed="3,600"),
    BadSetting("max_response_bytes", ("--max-response-bytes", "1000"), allowed="65,536"),
    BadSetting("max_pages_per_window", ("--max-pages-per-window", "0"), allowed="10,000,000"),
    BadSetting("lease_wait", ("--lease-wait", "7h"), allowed="6 hours"),
    BadSetting("warehouse", ("--warehouse", "{file}"), allowed="directory"),
)


@dataclass(frozen=True)
class SettingCheck:
    bad: BadSetting
    returncode: int
    lines: list[str]
    calls: int  # API calls + token requests the simulator saw

    @property
    def ok(self) -> bool:
        line = self.lines[0] if len(self.lines) == 1 else ""
        return (
            self.returncode == EXIT_SETTINGS
            and self.bad.setting in line
            and self.bad.allowed.lower() in line.lower()
            and self.calls == 0
        )


def check_bad_settings(bads: Sequence[BadSetting], workdir: Path) -> list[SettingCheck]:
    """Run `zoom-ingest run` once per wrong setting, all at once, each against a
    simulator of its own: what did it print, and did it call the API or the token
    endpoint?"""
    a_file = workdir / "not-a-folder"
    a_file.write_text("")
    with contextlib.ExitStack() as stack:
        launched = []
        for bad in bads:
            sim = stack.enter_context(Simulator(seed=1, days=1, activity_per_day=5))
            args = [a.replace("{file}", str(a_file)) for a in bad.args]
            warehouse = [] if "--warehouse" in args else ["--warehouse", str(workdir / "wh")]
            proc = subprocess.Popen(
                [*zoom_ingest_command(), "run", *warehouse, "--no-progress", *args],
                env=cli_env(sim, **dict(bad.env)),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            launched.append((bad, sim, proc))
        checks = []
        for bad, sim, proc in launched:
            _, stderr = proc.communicate(timeout=120)
            lines = [line for line in stderr.splitlines() if line.strip()]
            calls = sim.stats.calls + sim.stats.token_requests
            checks.append(SettingCheck(bad, proc.returncode, lines, calls))
    return checks
