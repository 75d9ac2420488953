"""The soak harness: the `zoom-ingest` command against the Zoom simulator, under every
fault and bad input we know of, SIGKILLed again and again, and raced by a second run.

Every run is a real `zoom-ingest run` process talking over sockets to a simulator that
lives in this process, so faults can be switched on and off between runs. After each
scenario the Delta tables are read back and compared with the simulator's ground truth
(row by row, every column), every checkpoint is checked against the data it claims, and
every line the processes printed plus every row of every table is searched for the
client secret and for each access token the simulator issued.

`scripts/soak.py` runs the whole soak and writes docs/faults.md; the fast tests
(tests/test_faults.py, test_crash_resume.py, test_concurrency.py, test_bad_input.py,
test_secrets.py, test_spark_delta.py) use the same harness and comparison on less data.

- `processes`: the command, its environment, the process runner
- `truth`: the comparison with the ground truth, leak search
- `kills`: kill and resume
- `bad_settings`: the bad-settings catalogue and its check
- `scenarios`: the soak's scenarios and their scale
- `report`: the rows and the markdown table
"""

from .bad_settings import BAD_SETTINGS, BadSetting, SettingCheck, check_bad_settings
from .kills import KillPoint, KillReport, kill_and_resume, recent_records, uncommitted_files
from .processes import (
    EXIT_BUSY,
    EXIT_DAILY_LIMIT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SETTINGS,
    FAKE_SECRET,
    KILLED,
    RUN_TIMEOUT,
    Attempt,
    Runner,
    cli_env,
    run_args,
    zoom_ingest_command,
)
from .report import Row, markdown
from .scenarios import QUICK_SCALE, Scale, Soak
from .truth import Comparison, compare, floor_of, leaks, runs_rejected

__all__ = [
    "BAD_SETTINGS",
    "EXIT_BUSY",
    "EXIT_DAILY_LIMIT",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_SETTINGS",
    "FAKE_SECRET",
    "KILLED",
    "QUICK_SCALE",
    "RUN_TIMEOUT",
    "Attempt",
    "BadSetting",
    "Comparison",
    "KillPoint",
    "KillReport",
    "Row",
    "Runner",
    "Scale",
    "SettingCheck",
    "Soak",
    "check_bad_settings",
    "cli_env",
    "compare",
    "floor_of",
    "kill_and_resume",
    "leaks",
    "markdown",
    "recent_records",
    "run_args",
    "runs_rejected",
    "uncommitted_files",
    "zoom_ingest_command",
]
