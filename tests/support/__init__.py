"""Importable support for the tests, the soak and the benchmarks (no path tricks)."""
