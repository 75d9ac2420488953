"""`python -m zoom_ingest.simulator`: `zoom-ingest simulate`'s command, standing alone: it
prints the simulator's connection as ``export ZOOM_<NAME>=value`` lines (command.py)."""

from .command import export_lines, simulate_command

if __name__ == "__main__":
    simulate_command(export_lines)(prog_name="python -m zoom_ingest.simulator")
