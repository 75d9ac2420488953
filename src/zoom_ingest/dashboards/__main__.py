"""`python -m zoom_ingest.dashboards`: regenerate zoom_audit.lvdash.json from the queries."""

from __future__ import annotations

from . import write_dashboard

if __name__ == "__main__":
    print(f"wrote {write_dashboard()}")
