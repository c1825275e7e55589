"""Benchmarks: `python -m bench NAME` runs `bench/NAME.py`; its last printed line is a JSON object."""
