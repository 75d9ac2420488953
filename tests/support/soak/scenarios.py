"""The soak's scenarios: every fault, bad record, kill, race, bad setting and model
sequence, each run against the simulator and summed up as one row of the report."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.simulator import Fault, Simulator
from zoom_ingest.tables import LOG_TABLES, UTC

from .bad_settings import BAD_SETTINGS, check_bad_settings
from .kills import KillReport, kill_and_resume, recent_records
from .processes import (
    EXIT_BUSY,
    EXIT_DAILY_LIMIT,
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_OK,
    FAKE_SECRET,
    RUN_TIMEOUT,
    Runner,
    cli_env,
    run_args,
)
from .report import Row, console_line, shorten, yes_or_no
from .truth import compare, floor_of, leaks, runs_rejected


@dataclass
class Scale:
    """How much data and how many kills; `--quick` shrinks everything."""

    days: int = 120  # multi-month backfill for the kill scenarios
    fault_days: int = 45  # history of the fault scenarios
    activity_per_day: int = 400
    operation_per_day: int = 80
    kills: int = 10
    incremental_kills: int = 5
    repeat: int = 2
    sequences: int = 30  # the model-based test's long profile
    steps: int = 20


#: `scripts/soak.py --quick`: the same scenarios on less data, fewer kills and trials.
QUICK_SCALE = Scale(days=40, fault_days=15, activity_per_day=300, operation_per_day=60,
                    kills=3, incremental_kills=2, repeat=1, sequences=8, steps=10)  # fmt: skip


class Soak:
    """The scenarios, each adding its row to `rows`; `scale` sets how much of everything."""

    def __init__(self, seed: int, scale: Scale, workdir: Path) -> None:
        self.seed = seed
        self.scale = scale
        self.workdir = workdir
        self.rows: list[Row] = []
        self._scenario = 0

    # -- helpers

    def _simulator(self, days: int, trial: int, **options: Any) -> Simulator:
        options.setdefault("activity_per_day", self.scale.activity_per_day)
        options.setdefault("operation_per_day", self.scale.operation_per_day)
        return Simulator(
            seed=self.seed * 1000 + self._scenario * 10 + trial,
            days=days,
            client_secret=FAKE_SECRET,
            **options,
        )

    def _place(self, name: str) -> tuple[Path, Path]:
        self._scenario += 1
        base = self.workdir / f"{self._scenario:02d}-{re.sub(r'[^a-z0-9]+', '-', name.lower())}"
        (base / "logs").mkdir(parents=True)
        return base / "wh", base / "logs"

    @staticmethod
    def _start(days: int) -> date:
        return datetime.now(UTC).date() - timedelta(days=days - 1)

    @staticmethod
    def _common(*extra: str) -> list[str]:
        return [
            "--requests-per-second", "150", "--concurrency", "6", "--timeout", "2",
            "--max-retries", "5", "--batch-rows", "5000", *extra,
        ]  # fmt: skip

    # -- one fault, repeated

    def fault(
        self,
        what: str,
        injected: str,
        faults: Callable[[Simulator], list[Fault]],
        *,
        kinds: Sequence[str] = (),
        sim_options: dict[str, Any] | None = None,
        extra: Sequence[str] = (),
        expect_first: int | tuple[int, ...] = EXIT_OK,
        between: Callable[[Simulator], None] | None = None,
        follow_up: Sequence[str] = (),
        notes: str = "",
    ) -> Row:
        """Run a backfill with `faults` armed; when the first run stops (with an exit code
        in `expect_first`), clear the faults (and call `between`) and run again."""
        allowed_first = (expect_first,) if isinstance(expect_first, int) else expect_first
        started = time.monotonic()
        hits, codes, equal, dups, consistent, leaked = [], [], True, 0, True, 0
        rejects = ""
        why = ""
        for trial in range(self.scale.repeat):
            warehouse, logs = self._place(f"{what}-{trial}")
            with self._simulator(self.scale.fault_days, trial, **(sim_options or {})) as sim:
                runner = Runner(sim, logs)
                start = self._start(self.scale.fault_days - 1)
                args = run_args(warehouse, start, *self._common(*extra))
                for fault in faults(sim):
                    sim.faults.inject(fault)
                first = runner.run(args, cli_env(sim))
                trial_codes = [first.returncode]
                state = compare(warehouse, sim, floor_of(start))
                consistent &= state.consistent
                if first.returncode != EXIT_OK:
                    why = why or first.error_line()
                    sim.faults.clear()
                    if between:
                        between(sim)
                    trial_codes.append(runner.run(args, cli_env(sim)).returncode)
                elif between:
                    between(sim)
                for extra_args in follow_up:
                    trial_codes.append(
                        runner.run([*args, *extra_args.split()], cli_env(sim)).returncode
                    )
                final = compare(warehouse, sim, floor_of(start))
                hits.append(sum(sim.faults.hits(k) for k in kinds) if kinds else 0)
                codes.append(trial_codes)
                equal &= final.equal and trial_codes[0] in allowed_first
                equal &= trial_codes[-1] == EXIT_OK
                dups += final.duplicates
                leaked += len(leaks(sim, [a.output for a in runner.attempts], warehouse))
                rejects = f"{final.rejects}/{final.rejects_expected}"
        return self._row(
            what, injected, hits, codes, equal, dups, consistent, rejects, leaked, started,
            f"{notes} {('Stopped with: ' + shorten(why)) if why else ''}".strip(),
        )  # fmt: skip

    def _row(
        self,
        what: str,
        injected: str,
        hits: list[int],
        codes: list[list[int]],
        equal: bool,
        duplicates: int,
        consistent: bool,
        rejects: str,
        leaked: int,
        started: float,
        notes: str,
    ) -> Row:
        runs = sorted({" → ".join(map(str, c)) for c in codes})
        row = Row(
            what=what,
            injected=injected,
            hits=" / ".join(str(h) for h in hits) if any(hits) else "-",
            runs=f"{len(codes)}× " + ", ".join(runs),
            equal=yes_or_no(equal),
            duplicates=str(duplicates),
            consistent=yes_or_no(consistent),
            rejects=rejects or "-",
            leaks=str(leaked),
            seconds=time.monotonic() - started,
            notes=notes,
            passed=equal and duplicates == 0 and consistent and leaked == 0,
        )
        self.rows.append(row)
        print(console_line(row), flush=True)
        return row

    # -- the catalogue

    def faults(self) -> None:
        calls = max(20, self.scale.fault_days * 4)  # roughly the calls of one backfill
        self.fault(
            "429 per-second storm",
            "simulator admits 25 req/s, client sends up to 150/s; plus 10% random QPS 429s",
            lambda s: [Fault("qps_429", count=40, probability=0.1)],
            kinds=("qps_429",),
            sim_options={"qps_limit": 25},
            notes="Every 429 holds all threads back for Retry-After.",
        )
        self.fault(
            "429 daily limit mid-backfill",
            f"`daily_429` from call {calls // 3} on, until cleared",
            lambda s: [Fault("daily_429", count=None, after_calls=calls // 3)],
            kinds=("daily_429",),
            expect_first=EXIT_DAILY_LIMIT,
            notes="Run 1 stops with exit 3 and the retry time; run 2 resumes from the cursor.",
        )
        for kind in ("http_500", "http_502", "http_503"):
            self.fault(
                f"HTTP {kind[-3:]}",
                f"`{kind}` on 8% of calls (at most 25)",
                lambda s, kind=kind: [Fault(kind, count=25, probability=0.08)],
                kinds=(kind,),
            )
        self.fault(
            "connection reset",
            "`reset` (TCP RST, no answer) on 8% of calls (at most 25)",
            lambda s: [Fault("reset", count=25, probability=0.08)],
            kinds=("reset",),
        )
        self.fault(
            "slow response past the client timeout",
            "`slow` 3 s answers to a 2 s client timeout, 6 calls",
            lambda s: [Fault("slow", count=6, delay=3.0, after_calls=5, probability=0.2)],
            kinds=("slow",),
        )
        self.fault(
            "token revoked mid-run (401 code 124)",
            "every token revoked at 3 moments of the run",
            lambda s: [Fault("token_revoked", after_calls=n) for n in (10, 40, 70)],
            kinds=("token_revoked",),
            notes="One refresh per revocation, then the call is retried.",
        )
        self.fault(
            "expired page token (code 300) mid-window",
            "`page_token_expired` on 20% of next-page calls (at most 8)",
            lambda s: [Fault("page_token_expired", count=8, probability=0.2)],
            kinds=("page_token_expired",),
            notes="The window restarts from its first page; lw_id removes the repeats.",
        )
        self.fault(
            "same record on two pages",
            "every page repeats the last record of the page before",
            lambda s: [],
            sim_options={"duplicate_across_pages": True, "activity_per_day": 900},
        )
        self.fault(
            "late-arriving records",
            "5% of records hidden during the backfill, then released",
            lambda s: [],
            sim_options={"late_fraction": 0.05},
            between=lambda s: s.release_late(),
            follow_up=("--mode incremental",
                       f"--mode reconcile --reconcile-days {self.scale.fault_days}"),
            notes="Backfill, release, incremental, reconcile: the reconcile run catches them.",
        )  # fmt: skip
        self.fault(
            "HTML error page with 200",
            "`html_200` on 8% of calls (at most 20)",
            lambda s: [Fault("html_200", count=20, probability=0.08)],
            kinds=("html_200",),
        )
        self.fault(
            "truncated JSON body",
            "`truncated_json` on 8% of pages (at most 20)",
            lambda s: [Fault("truncated_json", count=20, probability=0.08)],
            kinds=("truncated_json",),
        )
        self.fault(
            "empty page with a next_page_token",
            "`empty_page_with_token` on 10% of pages (at most 20)",
            lambda s: [Fault("empty_page_with_token", count=20, probability=0.1)],
            kinds=("empty_page_with_token",),
        )
        self.fault(
            "HTTP 503 that never ends",
            "`http_503` on every call after the 20th, until cleared",
            lambda s: [Fault("http_503", count=None, after_calls=20)],
            kinds=("http_503",),
            extra=("--max-retries", "3"),
            expect_first=EXIT_FAILED,
            notes="Retries stop after 3; the run exits 1 naming the window and Zoom's answer.",
        )
        self.fault(
            "empty pages with a next_page_token forever",
            "`empty_page_with_token` on every page after the 10th, until cleared",
            lambda s: [Fault("empty_page_with_token", count=None, after_calls=10)],
            kinds=("empty_page_with_token",),
            extra=("--requests-per-second", "400", "--concurrency", "2"),
            expect_first=EXIT_INCOMPLETE,
            notes="A looping API: each window gives up after 1,000 empty pages in a row "
            "(exit 7: the window is not proven complete).",
        )
        self.fault(
            "token revoked on every call",
            "`token_revoked` on every call after the 15th, until cleared",
            lambda s: [Fault("token_revoked", count=None, after_calls=15)],
            kinds=("token_revoked",),
            expect_first=EXIT_FAILED,
            notes="One refresh, then the run stops every stream with an auth error.",
        )
        self.fault(
            "token endpoint down",
            "`http_503` from /oauth/token on every request, until cleared",
            lambda s: [Fault("http_503", count=None, path="/oauth/token")],
            kinds=("http_503",),
            extra=("--max-retries", "2"),
            expect_first=EXIT_FAILED,
        )
        self.bad_credentials()
        self.fault(
            "everything at once",
            "5xx, resets, slow, 429s, revoked token, expired page tokens, bad bodies, "
            "duplicates across pages",
            lambda s: [
                Fault("http_500", count=10, probability=0.03),
                Fault("http_503", count=10, probability=0.03),
                Fault("reset", count=10, probability=0.03),
                Fault("slow", count=3, delay=3.0, probability=0.02),
                Fault("qps_429", count=10, probability=0.03),
                Fault("token_revoked", after_calls=30),
                Fault("token_revoked", after_calls=90),
                Fault("page_token_expired", count=4, probability=0.1),
                Fault("html_200", count=5, probability=0.02),
                Fault("truncated_json", count=5, probability=0.02),
                Fault("empty_page_with_token", count=5, probability=0.03),
            ],
            kinds=("http_500", "http_503", "reset", "slow", "qps_429", "token_revoked",
                   "page_token_expired", "html_200", "truncated_json", "empty_page_with_token"),
            sim_options={"duplicate_across_pages": True},
            expect_first=(EXIT_OK, EXIT_FAILED),
            notes="Should a token be revoked again between its refresh and its first use, "
                  "that run stops (exit 1: one refresh per 124, as the API contract says) "
                  "and the next one finishes; Runs shows whether it happened.",
        )  # fmt: skip

    def bad_credentials(self) -> None:
        """A wrong client secret: refused once, the run stops; fixed, the next one runs."""
        started = time.monotonic()
        warehouse, logs = self._place("bad-credentials")
        days = self.scale.fault_days
        with self._simulator(days, 0) as sim:
            runner = Runner(sim, logs)
            start = self._start(days - 1)
            args = run_args(warehouse, start, *self._common())
            wrong = runner.run(args, cli_env(sim, ZOOM_CLIENT_SECRET="FAKE-wrong-secret-0000"))
            asked = sim.stats.token_requests
            right = runner.run(args, cli_env(sim))
            final = compare(warehouse, sim, floor_of(start))
            texts = [a.output for a in runner.attempts]
            leaked = len(leaks(sim, texts, warehouse))
            leaked += sum("FAKE-wrong-secret-0000" in text for text in texts)
        self._row(
            "wrong client secret",
            "ZOOM_CLIENT_SECRET set to another value for the first run",
            [asked],
            [[wrong.returncode, right.returncode]],
            final.equal and wrong.returncode == EXIT_FAILED and right.returncode == EXIT_OK,
            final.duplicates,
            final.consistent,
            f"{final.rejects}/{final.rejects_expected}",
            leaked,
            started,
            f"Hits: token requests of the refused run (refused once, not asked again). "
            f"Stopped with: {shorten(wrong.error_line())}",
        )

    def bad_records(self) -> None:
        now = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")

        def sign_in(i: int, **fields: Any) -> dict[str, Any]:
            return {"email": f"odd{i}@example.com", "time": stamp, "type": "Sign in", **fields}

        big = "x" * (1024 * 1024)
        cases: list[tuple[str, str, list[Any], int]] = [
            ("record without `time`", "3 records",
             [{k: v for k, v in sign_in(i).items() if k != "time"} for i in range(3)], 3),
            ("unparseable `time`",
             "`yesterday`, `2025-13-45T99:00:00Z`, an empty string, a time without zone",
             [sign_in(0, time="yesterday"), sign_in(1, time="2025-13-45T99:00:00Z"),
              sign_in(2, time=""), sign_in(3, time=stamp[:-1])], 4),
            ("wrong JSON types", "`time` a number/null, `email` 42, `type` a list, "
             "`version` an object",
             [sign_in(0, time=1754922738), sign_in(1, time=None), sign_in(2, email=42),
              sign_in(3, type=["Sign in"]), sign_in(4, version={"major": 6})], 5),
            ("record that is not a JSON object", "a string, a list, null and a number",
             ["Sign in", [stamp, "odd@example.com"], None, 3.5], 4),
            ("extra unknown fields", "3 valid records with undocumented fields",
             [sign_in(i, device_id=i, extra={"nested": [1, 2]}) for i in range(3)], 0),
            ("huge strings", "3 records with a 1 MiB `version` / `email`",
             [sign_in(0, version=big), sign_in(1, email=big + "@example.com"),
              sign_in(2, ip_address=big[:100_000])], 0),
            ("control characters", "NUL, BEL, ESC, U+2028, RTL override in fields",
             [sign_in(0, email="nul\x00@example.com"), sign_in(1, version="bell\x07esc\x1b"),
              sign_in(2, client_type="line\u2028sep\u202eevil")], 0),
            ("lone surrogate", "a field holding an unpaired UTF-16 surrogate",
             [sign_in(0, ip_address="\ud800"), sign_in(1, email="a\udfffb@example.com")], 2),
        ]  # fmt: skip
        for what, injected, records, rejected in cases:
            self._bad_record_case(what, injected, records, rejected)

    def _bad_record_case(self, what: str, injected: str, records: list[Any], rejected: int) -> None:
        started = time.monotonic()
        warehouse, logs = self._place(what)
        days = 4
        with self._simulator(days, 0, activity_per_day=150, operation_per_day=30) as sim:
            sim.add_records("activity_logs", records)
            runner = Runner(sim, logs)
            start = self._start(days - 1)
            args = run_args(warehouse, start, *self._common())
            first = runner.run(args, cli_env(sim))
            second = runner.run(args, cli_env(sim))  # fetches the same bad records again
            final = compare(warehouse, sim, floor_of(start))
            summary = first.summary_rejected()
            in_runs = runs_rejected(warehouse)
            leaked = len(leaks(sim, [a.output for a in runner.attempts], warehouse))
        ok = final.equal and final.rejects == rejected and summary == rejected
        self._row(
            what, injected, [len(records)], [[first.returncode, second.returncode]],
            ok and first.returncode == second.returncode == EXIT_OK, final.duplicates,
            final.consistent, f"{final.rejects} / {summary} / {in_runs}", leaked, started,
            "Stored as given." if rejected == 0 else
            "In zoom_ingest_rejects with the raw JSON and the reason; stored once though "
            "fetched twice.",
        )  # fmt: skip

    def kills(self) -> None:
        """SIGKILL during a multi-month backfill, then during an incremental run."""
        started = time.monotonic()
        warehouse, logs = self._place("sigkill-backfill")
        rng = random.Random(self.seed)
        days = self.scale.days
        with self._simulator(days, 0, latency=0.004) as sim:
            runner = Runner(sim, logs)
            start = self._start(days - 1)
            args = run_args(warehouse, start, *self._common("--batch-rows", "1500"))
            report = kill_and_resume(
                runner, args, cli_env(sim), kills=self.scale.kills, rng=rng,
                max_calls=max(4, days * 3 // (self.scale.kills + 1)), max_delay=0.4,
                floor=floor_of(start), warehouse=warehouse,
            )  # fmt: skip
            self._kill_row(
                f"SIGKILL during a {days}-day backfill", report, runner, sim, warehouse, started
            )

            started = time.monotonic()
            sim.add_records("activity_logs", recent_records(sim, 6000, timedelta(minutes=50), 1))
            # One paging chain of ~20 pages: slower answers spread it over ~0.5 s, so the
            # kills land while it pages as well as while it merges.
            sim.latency = 0.02
            report = kill_and_resume(
                runner, args, cli_env(sim), kills=self.scale.incremental_kills, rng=rng,
                max_calls=12, max_delay=0.3, floor=floor_of(start), warehouse=warehouse,
            )  # fmt: skip
            self._kill_row(
                "SIGKILL during an incremental run (6,000 new records)",
                report, runner, sim, warehouse, started,
            )  # fmt: skip

    def _kill_row(
        self,
        what: str,
        report: KillReport,
        runner: Runner,
        sim: Simulator,
        warehouse: Path,
        started: float,
    ) -> None:
        points = "; ".join(f"#{i + 1}: {p.describe()}" for i, p in enumerate(report.kills))
        codes = ["killed"] * len(report.kills) + [str(report.final.returncode)]
        self._row(
            what,
            f"SIGKILL at seeded random moments, {len(report.kills)} times in a row",
            [len(report.kills)],
            [codes],  # type: ignore[list-item]
            report.comparison.equal
            and report.final.returncode == EXIT_OK
            and not report.finished_early
            and len(report.kills) > 0,
            report.comparison.duplicates,
            all(p.consistent for p in report.kills),
            f"{report.comparison.rejects}/{report.comparison.rejects_expected}",
            len(leaks(sim, [a.output for a in runner.attempts], warehouse)),
            started,
            f"Kill points: {points}. Final: {report.comparison.describe()}.",
        )

    def concurrency(self) -> None:
        started = time.monotonic()
        warehouse, logs = self._place("concurrent")
        days = self.scale.fault_days
        with self._simulator(days, 0, latency=0.01) as sim:
            runner = Runner(sim, logs)
            start = self._start(days - 1)
            args = run_args(warehouse, start, *self._common())
            first = runner.start(args, cli_env(sim))
            second = runner.start(args, cli_env(sim))
            t0, calls = time.monotonic(), sim.stats.calls
            for proc, _ in (first, second):
                proc.wait(timeout=RUN_TIMEOUT)
            attempts = [runner.collect(p, out, t0, calls) for p, out in (first, second)]
            codes = sorted(a.returncode for a in attempts)
            busy = next((a for a in attempts if a.returncode == EXIT_BUSY), None)
            final = compare(warehouse, sim, floor_of(start))
            leaked = len(leaks(sim, [a.output for a in runner.attempts], warehouse))
        message = busy.stderr.strip().splitlines()[-1] if busy else ""
        message = re.sub(r"pid \d+", "pid <n>", message.replace(str(warehouse), "<warehouse>"))
        self._row(
            "two runs started at once on one warehouse",
            "2 processes launched back to back",
            [2],
            [[" and ".join(map(str, codes))]],  # type: ignore[list-item]
            final.equal and codes == [EXIT_OK, EXIT_BUSY],
            final.duplicates,
            final.consistent,
            f"{final.rejects}/{final.rejects_expected}",
            leaked,
            started,
            f"The second says: {shorten(message, 160)}",
        )

    def run_all(self) -> None:
        """Every scenario, in the order of the report."""
        self.faults()
        self.bad_records()
        self.kills()
        self.concurrency()
        self.settings()
        self.model()

    def model(self) -> None:
        """The model-based test's long profile: new random sequences of runs each time."""
        from ..cursor_model import TALLY, explore

        started = time.monotonic()
        TALLY.clear()
        failure = ""
        try:
            explore(self.scale.sequences, self.scale.steps, derandomize=False)
        except Exception as exc:  # hypothesis has printed the shortest failing sequence
            failure = f"{type(exc).__name__}: {str(exc)[:300]}"
        t = TALLY
        self._row(
            "random sequences of runs (model-based, tests/support/cursor_model.py)",
            f"{t['sequences']} sequences × up to {self.scale.steps} steps "
            f"({t['steps_checked']} checked): {t['runs']} runs, {t['kills']} SIGKILLs, "
            f"{t['daily_limit_stops']} daily-limit stops, {t['overlapping_pairs']} overlapping "
            f"pairs, {sum(v for k, v in t.items() if k.startswith('fault_'))} fault runs, "
            f"{t['late_records']} late records, {t['minutes_advanced'] // 1440} days of time",
            [t["kills"], t["daily_limit_stops"]],
            [[EXIT_OK]] * max(1, t["sequences"]),
            not failure,
            0,  # a duplicate lw_id fails the invariant, so failure covers it
            not failure,
            "-",
            0,
            started,
            failure
            or f"records lost 0, duplicates 0; settle runs stored {t['records_settled']:,} "
            "records, each sequence's tables equal to the truth since its floor",
        )

    def settings(self) -> None:
        started = time.monotonic()
        base, _ = self._place("bad-settings")
        base.mkdir()
        checks = check_bad_settings(BAD_SETTINGS, base)
        leaked = sum(FAKE_SECRET in " ".join(c.lines) for c in checks)
        failed = [c.bad.label for c in checks if not c.ok]
        settings_named = sorted({c.bad.setting for c in checks})
        self._row(
            "bad settings",
            f"{len(checks)} wrong values for {len(settings_named)} settings: "
            + ", ".join(settings_named),
            [len(checks)],
            [sorted({c.returncode for c in checks})],
            not failed,
            0,
            True,
            "-",
            leaked,
            started,
            "Each: exit 2, one line naming the setting and what is allowed, no API or "
            "token call." + (f" FAILED: {'; '.join(failed)}" if failed else ""),
        )
        self._retention_clamp()

    def _retention_clamp(self) -> None:
        started = time.monotonic()
        warehouse, logs = self._place("retention-clamp")
        with self._simulator(200, 0, activity_per_day=4, operation_per_day=1) as sim:
            runner = Runner(sim, logs)
            asked = datetime.now(UTC).date() - timedelta(days=250)
            attempt = runner.run(run_args(warehouse, asked, *self._common("--window-days", "14")),
                                 cli_env(sim))  # fmt: skip
            warned = "retention" in attempt.stderr
            oldest_kept = min(
                LocalEngine(warehouse).read_table(LOG_TABLES["activity_logs"])["time"].to_pylist()
            )
            within = oldest_kept >= datetime.now(UTC) - timedelta(days=186)
            leaked = len(leaks(sim, [attempt.output], warehouse))
        self._row(
            "backfill start older than Zoom's 6-month retention",
            f"--backfill-start {asked} (250 days back)",
            [1],
            [[attempt.returncode]],
            attempt.returncode == EXIT_OK and warned and within,
            0,
            True,
            "-",
            leaked,
            started,
            "Not an error: clamped to the retention with a warning, and the run proceeds "
            f"(warning printed: {yes_or_no(warned)}; oldest row {oldest_kept:%Y-%m-%d}).",
        )
