"""The fault suite (issue 6): crash, contention, bad input, damaged state, clock jumps.

A package, so its modules import as ``faults.*`` and never shadow ``tests/conftest.py``."""
