"""Dispatch: from a target to the deliverer that sends it, by the target's declaration in
``kinds.py``; and the loops the engine and the outbox call (docs/design.md section 5).

``kinds`` names each deliverer (``"module.Class"``) and imports none, so validating a
job file never imports httpx or smtplib; this module, which only runs import, resolves
the names.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, TextIO

from ..secrets import Masker, MissingVariable, expand_text
from ..spec import Config, JobSpec, Target
from . import netguard
from .base import Deliverer, DeliveryResult, Report, target_wants
from .kinds import DeliveryKind, kind_of, names

if TYPE_CHECKING:  # the type only: httpx is imported by http.py alone (STYLE.md, 7)
    import httpx



# Each deliverer's module, imported when a target of its kind is first delivered: the
# HTTP ones import httpx, 15 MB of a daemon's memory that a repo without HTTP targets
# never needs (issue 17).
def _email() -> ModuleType:
    from . import email

    return email


def _healthchecks() -> ModuleType:
    from . import healthchecks

    return healthchecks


def _stdout() -> ModuleType:
    from . import stdout

    return stdout


def _telegram() -> ModuleType:
    from . import telegram

    return telegram


def _webhook() -> ModuleType:
    from . import webhook

    return webhook


_MODULES: dict[str, Callable[[], ModuleType]] = {
    "email": _email,
    "healthchecks": _healthchecks,
    "stdout": _stdout,
    "telegram": _telegram,
    "webhook": _webhook,
}

__all__ = [
    "deliver_all",
    "deliverer_class",
    "deliverer_for",
    "notify_start",
    "pings_start",
    "streams",
    "target_wants",
]


def pings_start(kind: str) -> bool:
    """Whether targets of this kind are told when a run starts (a liveness monitor)."""
    decl = kind_of(kind)
    return decl is not None and decl.monitor


def streams(kind: str) -> bool:
    """Whether ``cronfile run NAME`` shows this kind's delivery on the terminal already."""
    decl = kind_of(kind)
    return decl is not None and decl.streams


def deliverer_class(decl: DeliveryKind) -> type[Deliverer]:
    """The deliverer class a declaration names (its module imported now)."""
    module, _, cls = decl.deliverer.rpartition(".")
    return getattr(_MODULES[module](), cls)


def preload(specs: Iterable[JobSpec]) -> None:
    """Import the deliverers of the kinds ``specs`` deliver to, now (a daemon's start):
    a run that starts must not wait for an import (healthchecks' /start ping), and a
    kind no job uses is never imported."""
    seen: set[str] = set()
    keys = names()
    for spec in specs:
        for item in spec.data.get("deliver") or ():
            kind = item if isinstance(item, str) else next((k for k in keys if k in item), None)
            if kind is not None and kind not in seen:
                seen.add(kind)
                decl = kind_of(kind)
                if decl is not None:
                    deliverer_class(decl)


def deliverer_for(
    target: Target,
    config: Config,
    environ: Mapping[str, str],
    *,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
    resolver: netguard.Resolver = netguard.default_resolver,
    stream: TextIO | None = None,
) -> Deliverer:
    """The deliverer for one target. ``transport`` replaces httpx's network (tests use
    ``httpx.MockTransport``), ``sleep`` the waits between tries, ``resolver`` DNS,
    ``stream`` stdout (default: ``sys.stdout`` at delivery time). Builds no connections
    and expands no ``${VAR}``: that happens in ``deliver``, whose failures are results."""
    decl = kind_of(target.kind)
    if decl is None:
        raise ValueError(
            f"unknown delivery target {target.kind!r} (known: {', '.join(names())})"
        )
    wiring: dict[str, Any] = {}
    for need in decl.wiring:
        if need == "http":
            from .http import Http

            wiring["http"] = Http(transport=transport, sleep=sleep, resolver=resolver, config=config)
        elif need == "sleep":
            wiring["sleep"] = sleep
        elif need == "stream":
            wiring["stream"] = stream
    return deliverer_class(decl)(target, config, environ, **wiring)  # type: ignore[call-arg]


def _target_secrets(target: Target, environ: Mapping[str, str]) -> list[str]:
    """Every value a target's ${VAR}s bring in: a backstop mask for unexpected errors."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            try:
                found.extend(expand_text(value, environ)[1])
            except MissingVariable:
                pass
        elif isinstance(value, Mapping):
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)

    walk(target.dest)
    walk(dict(target.options))
    return found


def _crashed(target: Target, environ: Mapping[str, str], exc: BaseException) -> DeliveryResult:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return DeliveryResult(
        target.label(), False, 0, error=Masker(_target_secrets(target, environ)).mask(text)
    )


def deliver_all(
    targets: Sequence[Target],
    report: Report,
    config: Config,
    environ: Mapping[str, str],
    **kw: Any,
) -> list[DeliveryResult]:
    """Deliver ``report`` to each target in order, one result per target (filtered ones
    included, as skipped). Never raises: an exception becomes ``ok=False`` with its text.
    ``kw`` goes to :func:`deliverer_for`."""
    results: list[DeliveryResult] = []
    for target in targets:
        if not target_wants(target, report.status):
            on = ", ".join(target.on)
            results.append(DeliveryResult(target.label(), True, 0, skipped=f"on: [{on}]"))
            continue
        try:
            results.append(deliverer_for(target, config, environ, **kw).deliver(report))
        except Exception as exc:  # a deliverer's bug must not cost the other targets
            results.append(_crashed(target, environ, exc))
    return results


def notify_start(
    targets: Sequence[Target],
    report: Report,
    config: Config,
    environ: Mapping[str, str],
    **kw: Any,
) -> list[DeliveryResult]:
    """Tell the targets that care (healthchecks' /start) that a run began. ``report``
    carries the run's id and start time; its status and output are not read. Returns
    results only for targets that sent something. Never raises."""
    results: list[DeliveryResult] = []
    for target in targets:
        try:
            result = deliverer_for(target, config, environ, **kw).start(report)
        except Exception as exc:
            result = _crashed(target, environ, exc)
        if result is not None:
            results.append(result)
    return results
