"""Benchmarks: separate programs (`deneva bench ...`), never timed tests."""
