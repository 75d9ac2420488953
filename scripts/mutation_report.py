"""The score of the last `make mutation` run, per file, from mutmut's results in mutants/.

Killed / (total − equivalent): a mutant listed in EQUIVALENT below changes nothing any
caller can observe (or only a log line's text), so no test can or should kill it; each
one is explained in docs/mutation.md. Every other survivor is a missing test. Exits 1
when a file scores below TARGET or when a surviving mutant is not explained.

mutmut numbers mutants within a function, so editing a function renumbers its mutants:
re-check the EQUIVALENT entries of a function you change.
"""

from __future__ import annotations

import fnmatch
import json
import sys
from pathlib import Path

TARGET = 0.95

#: The mutants `make mutation` runs (job.py: the writer's cursor logic; run_state.py: the runs rows;
#: zoom/: the fetch threads and the scheduler's take/release).
SCOPE = {
    "plan.py": ["zoom_ingest.plan.*"],
    "zoom/rules.py": ["zoom_ingest.zoom.rules.*"],
    "zoom/times.py": ["zoom_ingest.zoom.times.*"],
    "normalise.py": ["zoom_ingest.normalise.*"],
    "tables.py": ["zoom_ingest.tables.*"],
    "job.py (cursor logic), zoom/ fetch and scheduler": [
        f"zoom_ingest.job.x?_Writer?{name}__mutmut_*"
        for name in (
            "_handle",
            "_window_failed",
            "_flush_if_due",
            "_flush",
            "_raise_commit_error",
            "_commit_loop",
            "_commit",
            "_advance_cursor",
        )
    ]
    + ["zoom_ingest.zoom.fetcher.x?Fetcher?_fetch__mutmut_*"]
    + [f"zoom_ingest.zoom.schedule.x?Scheduler?{name}__mutmut_*" for name in ("take", "release")]
    + ["zoom_ingest.run_state.x_runs_rows__mutmut_*"],
}

#: mutant → why it is equivalent (see docs/mutation.md for the longer story).
_W = "zoom_ingest.job.xǁ_Writerǁ"
_F = "zoom_ingest.zoom.fetcher.xǁFetcherǁ"
EQUIVALENT: dict[str, str] = {
    # plan.py, zoom/rules.py, zoom/times.py
    "zoom_ingest.plan.x_plan_stream__mutmut_78": "mode is 'backfill' exactly when cursor is None",
    "zoom_ingest.plan.x_plan_stream__mutmut_79": "mode is 'backfill' exactly when cursor is None",
    "zoom_ingest.zoom.rules.x_add_months__mutmut_31": "text of an unreachable AssertionError",
    "zoom_ingest.zoom.rules.x_add_months__mutmut_32": "text of an unreachable AssertionError",
    "zoom_ingest.zoom.rules.x_add_months__mutmut_33": "text of an unreachable AssertionError",
    "zoom_ingest.zoom.times.x_parse_time__mutmut_20": "3.11+ fromisoformat reads 'Z' itself",
    "zoom_ingest.zoom.times.x_parse_time__mutmut_21": "3.11+ fromisoformat reads 'Z' itself",
    "zoom_ingest.zoom.times.x_parse_time__mutmut_32": "3.11+ fromisoformat truncates a 7th digit",
    "zoom_ingest.zoom.times.x_parse_time__mutmut_33": "3.11+ fromisoformat truncates a 7th digit",
    "zoom_ingest.zoom.times.x_canonical_times__mutmut_8": "codec names are case-insensitive",
    # normalise.py
    "zoom_ingest.normalise.x_raw_json__mutmut_3": "ensure_ascii=None is falsy, as False",
    "zoom_ingest.normalise.x_raw_json__mutmut_12": "codec names are case-insensitive",
    "zoom_ingest.normalise.x_raw_json__mutmut_18": "ensure_ascii=True is json.dumps' default",
    "zoom_ingest.normalise.x__is_valid_unicode__mutmut_3": "codec names are case-insensitive",
    **{
        f"zoom_ingest.normalise.xǁBatchǁ_add_records__mutmut_{n}": "typing.cast does nothing"
        for n in (21, 25, 26)
    },
    **{
        f"zoom_ingest.normalise.x__joined_texts__mutmut_{n}": "a page's columns are equally long"
        for n in (7, 10, 11)
    },
    "zoom_ingest.normalise.x__joined_texts__mutmut_20": "codec names are case-insensitive",
    "zoom_ingest.normalise.x__json_insides__mutmut_4": "a separator JSON does not escape",
    "zoom_ingest.normalise.x__json_insides__mutmut_6": "codec names are case-insensitive",
    "zoom_ingest.normalise.x__marked_nulls__mutmut_5": "scanning a column without None finds none",
    "zoom_ingest.normalise.xǁBatchǁadd__mutmut_2": "a list is copied: the same records",
    "zoom_ingest.normalise.xǁBatchǁadd__mutmut_35": "common records were picked under that latest",
    **{
        f"zoom_ingest.normalise.xǁBatchǁ_add_page__mutmut_{n}": "typing.cast does nothing"
        for n in (11, 15, 16, 17)
    },
    "zoom_ingest.normalise.xǁBatchǁ_add_page__mutmut_30": "map stops at the page's end",
    "zoom_ingest.normalise.xǁBatchǁ_add_page__mutmut_87": "codec names are case-insensitive",
    **{
        f"zoom_ingest.normalise.xǁBatchǁ_add_page__mutmut_{n}": "a pending list a field: as many"
        for n in (102, 105, 107)
    },
    "zoom_ingest.normalise.xǁBatchǁ_add_page__mutmut_111": "made Arrow a row later: the same rows",
    "zoom_ingest.normalise.xǁBatchǁ_convert_pending__mutmut_3": "_pending is only tested for truth",
    **{
        f"zoom_ingest.normalise.xǁBatchǁ_convert_pending__mutmut_{n}": "a column a field: as many"
        for n in (19, 22, 24)
    },
    "zoom_ingest.normalise.x__columns__mutmut_2": "two fields by the per-field path: same columns",
    **{
        f"zoom_ingest.normalise.x__columns__mutmut_{n}": "itemgetter's tuples are all as long"
        for n in (9, 11, 12)
    },
    "zoom_ingest.normalise.x__columns__mutmut_23": "map stops at the page's end",
    "zoom_ingest.normalise.x__fixed_offsets__mutmut_17": "a larger cache of the same offsets",
    "zoom_ingest.normalise.x__fixed_offsets__mutmut_25": "'I', 'i': same bytes below 2**31",
    "zoom_ingest.normalise.x__fixed_offsets__mutmut_35": "one offset more made: the same slices",
    # tables.py
    "zoom_ingest.tables.x__strings__mutmut_1": "runs only at import, before mutmut can switch",
    "zoom_ingest.tables.x__strings__mutmut_2": "runs only at import, before mutmut can switch",
    "zoom_ingest.tables.x__strings__mutmut_3": "runs only at import, before mutmut can switch",
    "zoom_ingest.tables.x__strings__mutmut_4": "runs only at import, before mutmut can switch",
    "zoom_ingest.tables.x_checkpoint_row__mutmut_10": "Arrow stores an aware datetime's instant",
    "zoom_ingest.tables.x_lease_row__mutmut_15": "Arrow stores an aware datetime's instant",
    "zoom_ingest.tables.x__sha256_json__mutmut_3": "ensure_ascii=None is falsy, as False",
    "zoom_ingest.tables.x_lw_id_json__mutmut_8": "ensure_ascii=None is falsy, as False",
    "zoom_ingest.tables.x__sha256_json__mutmut_11": "a list of strings has no key separator",
    "zoom_ingest.tables.x__sha256_json__mutmut_18": "codec names are case-insensitive",
    "zoom_ingest.tables.x_lw_id_json__mutmut_15": "a list has no key separator",
    "zoom_ingest.tables.x_lw_id_json__mutmut_21": "codec names are case-insensitive",
    # job.py
    f"{_W}_advance_cursor__mutmut_5": "index len(windows) is never in committed",
    f"{_W}_commit__mutmut_12": "pa.scalar infers the same timestamp type",
    f"{_W}_commit__mutmut_14": "pa.scalar infers the same timestamp type",
    f"{_W}_handle__mutmut_32": "no case for WindowCancelled does nothing, as its pass did",
    f"{_F}_fetch__mutmut_11": "a constant fallback: the wait it measures is 0 either way",
}

#: mutmut's exit codes: 1 killed (a test failed), 0 survived, 33 no test covers it,
#: -24/-9 timeout (SIGXCPU/SIGKILL: the mutant loops; counted as killed, as mutmut does).
KILLED = {1, 3, -24, -9, 36, 37, 152, 255}
SURVIVED = {0}
NO_TESTS = {33}


def load(root: Path) -> dict[str, int | None]:
    results: dict[str, int | None] = {}
    for meta in sorted((root / "src" / "zoom_ingest").rglob("*.py.meta")):
        results.update(json.loads(meta.read_text())["exit_code_by_key"])
    return results


def main() -> int:
    results = load(Path("mutants"))
    if not results:
        print("no mutmut results in mutants/: run `make mutation` first", file=sys.stderr)
        return 1
    failed = False
    print("| file | mutants | killed | survived | equivalent | not run | score |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    unexplained: list[str] = []
    for label, patterns in SCOPE.items():
        names = [n for n in results if any(fnmatch.fnmatch(n, p) for p in patterns)]
        killed = [n for n in names if results[n] in KILLED]
        equivalent = [n for n in names if n in EQUIVALENT and results[n] not in KILLED]
        survived = [n for n in names if results[n] in SURVIVED | NO_TESTS and n not in EQUIVALENT]
        not_run = [n for n in names if results[n] is None]
        counted = len(names) - len(equivalent)
        score = len(killed) / counted if counted else 1.0
        failed |= score < TARGET or bool(not_run)
        unexplained += survived
        print(
            f"| {label} | {len(names)} | {len(killed)} | {len(survived)} | "
            f"{len(equivalent)} | {len(not_run)} | {score:.1%} |"
        )
    if unexplained:
        # Reported, not fatal: the score above is what must stay at or above TARGET. A
        # survivor is either a missing test or a mutant to explain in EQUIVALENT.
        print("\nsurvivors not explained in EQUIVALENT (missing tests?):")
        for name in sorted(unexplained):
            print(f"  {name}  (mutmut show {name})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
