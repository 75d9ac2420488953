"""zoom_ingest: Zoom's sign-in/sign-out activity logs and operation logs into Delta tables."""

import os
import sys

__version__ = "0.1.0"

# Arrow's memory pool, chosen by this variable before pyarrow is first imported (later it
# is fixed): jemalloc, whose release of unused memory (`engines.local.
# release_freed_memory`, after each merge) purges every thread's arenas. pyarrow's default,
# mimalloc, releases only the calling thread's heap, so Arrow memory freed by the
# normaliser's, the readers' and the committer's threads stayed resident: a 20-day
# backfill's RSS after each merge climbed ~14 MiB a merge (346 → 475 MiB) while Arrow
# held under 30 MiB. Linux only: that is where it was measured (and where Databricks
# runs); not every other platform's pyarrow wheel has jemalloc. A value set by the user wins.
#
# deltalake's Rust code has a jemalloc of its own, which keeps what a merge freed for up
# to 10 s (its default decay) before giving it back: the next merges then allocated
# anew on top of it, ~15 MiB on a 20-day backfill's peak (issue 22). Read from this
# variable when deltalake is loaded; 0 gives freed pages back at once.
if sys.platform.startswith("linux"):
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
    os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")
