"""Delivery: after a run is recorded, tell its targets (docs/design.md section 5).

- ``kinds.py``: every kind of target declared once (stdout, webhook, healthchecks,
  telegram, email): its keys in a job file, its schema, what the engine must know.
- ``dispatch.py``: ``deliverer_for``, ``target_wants``, ``deliver_all``,
  ``notify_start``: from a target to its deliverer, by its declaration.
- ``base.py``: the interface (``Report``, ``DeliveryResult``, ``Deliverer``) and the
  text every target shares (``status_line``); it imports no deliverer.
- one module per deliverer; ``http.py``, the one module that imports httpx (webhook,
  healthchecks and telegram POST through it); the pure retry policy in ``retry.py``;
  the webhook network guard in ``netguard.py``.

This package's ``__init__`` imports nothing, so that ``cronfile.spec`` can read
``kinds`` while the deliverers (which import ``cronfile.spec``) stay unloaded.
"""
