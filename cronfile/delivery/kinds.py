"""Every delivery kind, declared once (docs/design.md section 5).

A declaration says what a job file may write for the kind (its destination key and
options, with their JSON schema, which are required), what the engine must know about
it (a liveness monitor that counts a silent run as a success and is told when a run
starts; the target ``cronfile run NAME`` already showed on the terminal) and which
deliverer sends it. Everything else is derived from these declarations: the ``target``
entry of the job schema (``schema/generate.py`` writes both shipped copies), the checks
of a job's ``deliver:`` items (``cronfile.spec``), ``deliverer_for`` and
``target_wants`` (``dispatch.py``).

This module imports nothing from cronfile: validation reads it without paying for
httpx or smtplib, so a deliverer is named (``"module.Class"`` in this package) and
imported only when a delivery is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

__all__ = [
    "BARE",
    "KINDS",
    "ON",
    "DeliveryKind",
    "Option",
    "kind_of",
    "literal_secrets",
    "names",
    "target_schema",
]

Wiring = Literal["http", "sleep", "stream"]


@dataclass(frozen=True)
class Option:
    """One key of a delivery item: its JSON schema (with a description and an example)."""

    name: str
    schema: Mapping[str, Any]
    required: str | None = None  # when set: required, and this is the hint when missing
    mismatch: str | None = None  # the message when a value matches no branch of a oneOf
    # Its value is a secret even when written literally (not as ${VAR}): masked in the
    # run's output and in what deliveries report.
    secret: bool = False


@dataclass(frozen=True)
class DeliveryKind:
    """One kind of delivery target."""

    name: str
    dest: Option  # the key that names the kind; its value is the destination
    deliverer: str  # "module.Class" in cronfile.delivery
    options: tuple[Option, ...] = ()  # besides `on`, which every kind takes
    wiring: tuple[Wiring, ...] = ()  # what its deliverer is built with, beside the target
    url: bool = False  # the destination is an http(s) URL (or one ${VAR})
    bare: str | None = None  # may be written as the bare string `name`; its description
    label_dest: bool = True  # results and logs name it `kind:dest` (else just `kind`)
    # A liveness monitor, not a notification: a silent run (which succeeded) counts as a
    # success for its `on:` filter, and it is told when a run starts (its /start).
    monitor: bool = False
    # Shown on the terminal by `cronfile run NAME` as the run goes: not delivered again.
    streams: bool = False

    def option_names(self) -> frozenset[str]:
        """Every key an item of this kind may have, its own key and `on` included."""
        return frozenset({self.name, ON.name, *(o.name for o in self.options)})


def _string(description: str, example: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "string", **extra, "description": description, "examples": [example]}


ON = Option(
    "on",
    {
        "description": "Which outcomes this target receives: success, failure (failed, timeout, refused, interrupted), silent, always. Default [always], which excludes silent runs.",
        "type": "array",
        "items": {"enum": ["success", "failure", "silent", "always"]},
        "minItems": 1,
        "uniqueItems": True,
        "examples": [["failure"]],
    },
)

_KINDS = (
    DeliveryKind(
        "webhook",
        Option("webhook", _string("URL to POST the result to.", "https://hooks.example.com/T0/B0/xyz")),
        "webhook.WebhookDeliverer",
        options=(
            Option(
                "format",
                {
                    "enum": ["json", "slack", "discord", "text"],
                    "default": "json",
                    "description": "Webhook body shape.",
                    "examples": ["slack"],
                },
            ),
            Option(
                "secret",
                _string(
                    "Webhook: HMAC-SHA256 key; the body's signature goes in X-Cronfile-Signature: sha256=<hex>. Use ${VAR}.",
                    "${WEBHOOK_SECRET}",
                ),
            ),
            Option(
                "headers",
                {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "Webhook: extra request headers (${VAR} allowed).",
                    "examples": [{"Authorization": "Bearer ${TOKEN}"}],
                },
            ),
        ),
        wiring=("http",),
        url=True,
    ),
    DeliveryKind(
        "healthchecks",
        Option(
            "healthchecks",
            _string(
                "healthchecks.io-style ping URL: /start when a run starts, the bare URL on success, /fail on failure.",
                "https://hc-ping.com/0000-1111",
            ),
        ),
        "healthchecks.HealthchecksDeliverer",
        wiring=("http",),
        url=True,
        monitor=True,
    ),
    DeliveryKind(
        "telegram",
        Option(
            "telegram",
            {
                "type": ["string", "integer"],
                "description": "Telegram chat id to send the result to (needs token).",
                "examples": ["-1001234567890"],
            },
        ),
        "telegram.TelegramDeliverer",
        options=(
            Option(
                "token",
                _string("Telegram bot token, normally ${VAR}.", "${TELEGRAM_BOT_TOKEN}"),
                required="use ${VAR}",
                secret=True,
            ),
        ),
        wiring=("http",),
    ),
    DeliveryKind(
        "email",
        Option(
            "email",
            {
                "oneOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"type": "string"}, "minItems": 1},
                ],
                "description": "Recipient address(es); SMTP settings come from cronfile.yaml's smtp.",
                "examples": ["ops@example.com"],
            },
            mismatch="expected an address or a list of addresses",
        ),
        "email.EmailDeliverer",
        options=(
            Option(
                "subject",
                _string("Email subject; default `[cronfile] <job> <status>`.", "Nightly backup"),
            ),
        ),
        wiring=("sleep",),
    ),
    DeliveryKind(
        "stdout",
        Option(
            "stdout",
            {
                "type": "boolean",
                "const": True,
                "description": "Print the result to the engine's log.",
                "examples": [True],
            },
        ),
        "stdout.StdoutDeliverer",
        wiring=("stream",),
        bare="Print the result to the engine's log.",
        label_dest=False,
        streams=True,
    ),
)

KINDS: Mapping[str, DeliveryKind] = MappingProxyType({k.name: k for k in _KINDS})
BARE: tuple[str, ...] = tuple(k.name for k in _KINDS if k.bare is not None)


def names() -> tuple[str, ...]:
    """The kinds, in declaration order (the order messages list them in)."""
    return tuple(KINDS)


def kind_of(name: str) -> DeliveryKind | None:
    return KINDS.get(name)


def literal_secrets(kind: str, options: Mapping[str, Any]) -> list[str]:
    """The values of a target's options declared secret (a telegram token), as written."""
    decl = KINDS.get(kind)
    if decl is None:
        return []
    return [str(options[o.name]) for o in decl.options if o.secret and options.get(o.name)]


def target_schema() -> dict[str, Any]:
    """The job schema's ``$defs.target``: a bare kind's string, or a mapping with exactly
    one kind's key and the options (all kinds' options: which apply to which kind is
    checked by cronfile.spec, with a message that names the kind)."""
    properties: dict[str, Any] = {}
    for k in _KINDS:
        properties[k.name] = dict(k.dest.schema)
        for o in k.options:
            properties[o.name] = dict(o.schema)
    properties[ON.name] = dict(ON.schema)
    bare = [{"const": k.name, "description": k.bare} for k in _KINDS if k.bare is not None]
    return {
        "oneOf": [
            *bare,
            {
                "type": "object",
                "additionalProperties": False,
                "oneOf": [{"required": [k.name]} for k in _KINDS],
                "properties": properties,
            },
        ]
    }
