"""Benchmarks of GhostPay. `python -m bench.charge_bench` (or `make bench`) measures the charge path."""
