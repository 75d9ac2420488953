"""One job run in a process of its own, at an instant the caller chooses.

The model test (tests/test_cursor_model.py) SIGKILLs runs, so a run needs a process; it
also moves the simulator's clock by days, so the run must see the simulator's `now`, not
the machine's. Usage: ``python -m support.job_at SETTINGS_PICKLE WAREHOUSE NOW_ISO``; the
exit code is the run's.
"""

from __future__ import annotations

import logging
import pickle
import sys
from datetime import datetime
from pathlib import Path

from zoom_ingest import exit_codes
from zoom_ingest.engines.base import EngineBusy
from zoom_ingest.engines.local import LocalEngine
from zoom_ingest.job import run, zoom_client_config
from zoom_ingest.zoom import ZoomClient


def main(argv: list[str]) -> int:
    settings_file, warehouse, now_text = argv
    settings = pickle.loads(Path(settings_file).read_bytes())
    now = datetime.fromisoformat(now_text)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with ZoomClient(zoom_client_config(settings), backoff_base=0.01, backoff_max=0.05) as client:
        try:
            summary = run(settings, LocalEngine(warehouse), progress=False, client=client, now=now)
        except EngineBusy:
            return exit_codes.BUSY
    for line in summary.lines():
        print(line)
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
