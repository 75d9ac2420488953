"""Logging setup shared by the entry points: the local CLI and the Databricks tasks.

It lives apart from cli.py because the Databricks entry points must not import click or
rich (they are the `local` extra, not installed on Databricks): rich is imported only
when stderr is a terminal, which a job's driver never is.
"""

from __future__ import annotations

import logging
import sys


class RedactSecrets(logging.Filter):
    """Defence in depth: whatever a library logs, the client secret never leaves."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(s in message for s in self._secrets):
            for secret in self._secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


def configure_logging(level: str, secrets: list[str] | None = None) -> None:
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
    handler.addFilter(RedactSecrets(secrets or []))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("zoom_ingest").setLevel(level.upper())
