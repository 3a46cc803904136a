"""Stores: where cronfile keeps state between processes (``base`` is the interface)."""
