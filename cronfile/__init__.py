"""cronfile: a declarative cron runner for AI-agent jobs and shell jobs."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
