"""Helpers shared by the tests and the benchmark: real servers, mail builders, fault injectors.

Plain Python, no pytest imports, so `bench/run.py` can use the servers too.
"""
