"""How the Databricks tasks read a job parameter given more than once (`LastNonEmpty`).

Shared by `zoom-ingest-job` and `zoom-ingest-detections`, which must not import each
other: each entry point imports only shared modules.
"""

from __future__ import annotations

import argparse


class LastNonEmpty(argparse.Action):
    """An option given several times keeps its last non-empty value.

    The bundle passes `--schema={{job.parameters.schema}}` and then
    `--schema={{input.schema}}`: an account's own schema wins when it has one, and an
    empty value never erases a value given before it.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        if str(values).strip() or not getattr(namespace, self.dest, ""):
            setattr(namespace, self.dest, str(values).strip())
