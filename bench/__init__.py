"""Benchmarks and measurements, runnable from the repository (`make bench-frontend`, ...)."""
