"""`zoom-ingest`: the local command line, behind a check that its extra is installed.

The command (click, rich) and the local engine (deltalake, duckdb, sqlglot) are the
`local` extra, which a Databricks environment does not install. Without it, say how to
get it instead of a traceback about a missing module.
"""

from __future__ import annotations

import sys

from . import exit_codes

#: The top-level modules of the `local` extra (pyproject.toml).
LOCAL_MODULES = ("click", "rich", "deltalake", "duckdb", "sqlglot")


def main() -> None:
    try:
        from .cli import main as cli_main
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in LOCAL_MODULES:
            raise
        print(
            f"error: zoom-ingest needs the 'local' extra ({exc.name} is not installed): "
            "pip install 'zoom-ingest[local]'",
            file=sys.stderr,
        )
        exit_codes.fail(exit_codes.BAD_SETTING)
    cli_main()
