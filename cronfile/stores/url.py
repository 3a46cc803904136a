"""Which store a command uses: ``--state-url`` > ``CRONFILE_STATE_URL`` > cronfile.yaml's
``state_url`` > the state dir (docs/design.md 14.1).

A URL may hold ``${VAR}`` references (a password kept out of the repo), expanded from
the environment here. A URL that cannot be used -- an unknown scheme, a ``${VAR}`` that is
not set, a driver that is not installed -- is a one-line error (exit 2), never a silent
fall-back to the state dir: a host that quietly ran on local files would run every job a
second time beside its peers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import UsageError

__all__ = ["ENV", "PG_SCHEMES", "expand", "file_url_dir", "resolve"]

ENV = "CRONFILE_STATE_URL"
PG_SCHEMES = ("postgresql", "postgres")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand(url: str, environ: Mapping[str, str], source: str) -> str:
    """``${VAR}`` replaced by its value; a variable that is not set is an error naming
    ``source`` (where the URL came from)."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in environ:
            raise UsageError(f"{source}: state_url: ${{{name}}} is not set in the environment")
        return environ[name]

    return _VAR.sub(sub, url)


def resolve(flag: str | None, environ: Mapping[str, str], config_url: str | None, config_path: str = "cronfile.yaml") -> str | None:
    """The state URL in force, expanded, or None (the state dir). Checks the scheme."""
    if flag:
        raw, source = flag, "--state-url"
    elif environ.get(ENV):
        raw, source = environ[ENV], ENV
    elif config_url:
        raw, source = config_url, config_path
    else:
        return None
    url = expand(raw, environ, source)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in (*PG_SCHEMES, "file"):
        raise UsageError(
            f"{source}: state_url: {scheme + '://' if scheme else repr(raw)} is not a store cronfile knows "
            "(postgresql://user:password@host/db, or file:///path for a state dir)"
        )
    return url


def file_url_dir(url: str) -> Path | None:
    """The folder of a ``file://`` URL, None for any other."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "file":
        return None
    return Path(unquote(parts.path))
