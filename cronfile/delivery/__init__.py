"""Delivery: after a run is recorded, tell its targets (docs/design.md section 5).

One module per target (stdout, webhook, healthchecks, telegram, email), the interface in
``base.py``, the pure retry policy in ``retry.py`` and the webhook network guard in
``netguard.py``. Only ``webhook.py`` imports httpx.
"""

from __future__ import annotations

from .base import (
    Deliverer,
    DeliveryResult,
    Report,
    deliver_all,
    deliverer_for,
    notify_start,
    status_line,
)

__all__ = [
    "Deliverer",
    "DeliveryResult",
    "Report",
    "deliver_all",
    "deliverer_for",
    "notify_start",
    "status_line",
]
