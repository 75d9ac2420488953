"""zoom_ingest: Zoom's sign-in/sign-out activity logs and operation logs into Delta tables."""

__version__ = "0.1.0"
