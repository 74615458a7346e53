"""The benchmark: the real bot as a subprocess against the test fakes on loopback, one table.

Run it with `python -m bench` (or `make bench`); `--quick` is the small version CI runs to keep
it working, `--only 1,5` runs some scenarios. docs/performance.md explains every figure.
"""
