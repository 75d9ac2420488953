"""The cursor's promise under random sequences of runs (the machine: support/cursor_model.py).

A bounded, derandomized set of sequences runs here, the same on every CI run; `make soak`
explores new ones at length. A failure prints the shortest sequence hypothesis found.
"""

from __future__ import annotations

import os

from support.cursor_model import TALLY, explore

EXAMPLES = int(os.environ.get("ZOOM_INGEST_MODEL_EXAMPLES", "8"))
STEPS = 10


def test_every_sequence_of_runs_keeps_the_cursor_promise() -> None:
    TALLY.clear()
    explore(examples=EXAMPLES, steps=STEPS)
    print(f"{EXAMPLES} sequences x up to {STEPS} steps: {dict(sorted(TALLY.items()))}")
    # The sequences did what the promise is about, not only trivial steps.
    assert TALLY["sequences"] >= EXAMPLES
    assert TALLY["runs"] >= EXAMPLES
    assert TALLY["steps_checked"] >= EXAMPLES * 2
