"""Benchmarks run by `make bench` (`python -m tests.bench [name]`); pytest never collects them."""
