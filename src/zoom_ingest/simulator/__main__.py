"""`python -m zoom_ingest.simulator`: the same command as `zoom-ingest simulate`."""

from .command import simulate

if __name__ == "__main__":
    simulate(prog_name="python -m zoom_ingest.simulator")
