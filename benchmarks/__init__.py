"""Benchmarks of zoom_ingest against the local Zoom simulator.

`python -m benchmarks.run` (from the repository root) measures backfill throughput
against Zoom's rate-limit ceiling, a naive client as the baseline, the job's peak memory,
and the cost of an hourly incremental run as the table grows; `--quick` is a smoke run.
"""
