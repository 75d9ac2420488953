"""Logging setup shared by the entry points: the local CLI and the Databricks tasks.

It lives apart from cli.py because the Databricks entry points must not import click or
rich (they are the `local` extra, not installed on Databricks): rich is imported only
when stderr is a terminal, which a job's driver never is.
"""

from __future__ import annotations

import logging
import sys

from .masking import MaskSecrets, register_secret


def configure_logging(level: str, secrets: list[str] | None = None) -> None:
    """One handler on stderr whose every line is masked (`MaskSecrets`): `secrets` (the
    client secret given on the command line) and whatever else was registered."""
    for secret in secrets or []:
        register_secret(secret)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=False, log_time_format="%H:%M:%S")
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
    handler.addFilter(MaskSecrets())
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("zoom_ingest").setLevel(level.upper())
