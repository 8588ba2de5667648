"""Speed comparisons: `pytest bench/` (pytest-benchmark) and `python -m bench.report`."""
