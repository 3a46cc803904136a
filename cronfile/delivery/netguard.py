"""Where a webhook may go: a pure decision over a URL and its resolved addresses.

A job file names the URL, and whoever can commit a job file should not be able to make
the engine fetch its cloud's instance credentials (169.254.169.254) or poke services on
the engine's private network (the classic SSRF). So every address a host resolves to is
checked, not just the first, and the caller connects to an address that was checked
(``webhook.py`` pins the connection to it) so that a DNS answer that changes between the
check and the connect (DNS rebinding) cannot slip through.

Rules (docs/design.md section 5, config ``webhook_allowlist`` and ``allow_private_webhooks``):

- the scheme is http or https;
- with a non-empty allowlist, the host must match one entry: ``hooks.example.com``
  matches exactly that host; ``*.example.com`` matches any subdomain at any depth
  (``a.example.com``, ``a.b.example.com``) but not ``example.com`` itself, as in TLS
  wildcard certificates and Caddy's host matchers (list both to get both). Entries are
  host names or IP literals, compared case-insensitively, without ports or schemes;
- link-local and cloud metadata addresses are refused unless the host is listed
  *exactly* (a wildcard does not count: ``*.example.com`` should not let a stray DNS
  record reach the metadata service);
- private, loopback, unique-local, unspecified, multicast and other non-global addresses
  are refused unless ``allow_private`` is set or the host is listed exactly.

IPv4 addresses embedded in IPv6 ones (``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4)
are judged by the IPv4 address they reach.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

__all__ = ["METADATA_ADDRESSES", "Resolver", "check_url", "classify", "default_resolver"]

# Called as resolver(host, port) and returns getaddrinfo-style tuples, of which only
# item [4][0] (the address) is read. Raises OSError when the name does not resolve.
Resolver = Callable[..., Sequence[tuple[Any, ...]]]
default_resolver: Resolver = socket.getaddrinfo

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, DigitalOcean, OpenStack
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud (inside 100.64.0.0/10, so not link-local)
        "192.0.0.192",  # Oracle Cloud (classic)
    )
)

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def classify(address: str) -> tuple[str | None, bool]:
    """What kind of non-public address ``address`` is: (description, strict).

    ``(None, False)`` for a public address. ``strict`` is True for link-local and cloud
    metadata addresses, which only an exact allowlist entry lets through."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
    for candidate in _reached(ip):
        if candidate in METADATA_ADDRESSES:
            return "a cloud metadata address", True
        if candidate.is_link_local:
            return "link-local", True
    for candidate in _reached(ip):
        for test, desc in (
            ("is_loopback", "loopback"),
            ("is_unspecified", "unspecified"),
            ("is_multicast", "multicast"),
            ("is_private", "private"),
        ):
            if getattr(candidate, test):
                return desc, False
        # Shared address space (100.64.0.0/10), reserved blocks: not private by the
        # registry's letter, still not somewhere a webhook on the Internet lives.
        if not candidate.is_global:
            return "not a public address", False
    return None, False


def _reached(ip: _Address) -> list[_Address]:
    """The address itself plus any IPv4 address it carries."""
    out: list[_Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            out.append(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            out.append(ip.sixtofour)
        if ip in _NAT64:
            out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return out


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _norm_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _allow_match(host: str, allowlist: Sequence[str]) -> tuple[bool, bool]:
    """(matches some entry, matches an exact entry)."""
    exact = wild = False
    for entry in allowlist:
        e = _norm_host(entry)
        if e.startswith("*."):
            if host.endswith(e[1:]):  # "*.example.com" -> ".example.com"
                wild = True
        elif e and host == e:
            exact = True
    return exact or wild, exact


def check_url(
    url: str,
    *,
    allowlist: Sequence[str],
    allow_private: bool,
    resolver: Resolver = default_resolver,
) -> tuple[list[str], str | None]:
    """Decide whether ``url`` may be fetched.

    Returns (the resolved addresses, None) when it may, or (addresses so far, reason)
    when it may not; the reason reads after "refused: ". A name that does not resolve
    raises the resolver's ``OSError``: that is a network failure to retry, not a refusal.
    Connect to one of the returned addresses, not to the name."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:  # a bad port or a malformed IPv6 literal
        return [], f"invalid URL ({e})"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return [], f"scheme {scheme or '(none)'!r} is not http or https"
    host = _norm_host(parts.hostname or "")
    if not host:
        return [], "the URL has no host"
    listed, exact = _allow_match(host, allowlist)
    if allowlist and not listed:
        return [], f"{host} is not in webhook_allowlist"

    literal = _is_ip(host)
    if literal:
        addresses = [host.split("%", 1)[0]]
    else:
        infos = resolver(host, port or (443 if scheme == "https" else 80))
        addresses = []
        for info in infos:
            addr = str(info[4][0]).split("%", 1)[0]
            if addr not in addresses:
                addresses.append(addr)
        if not addresses:
            raise OSError(f"{host} resolved to no addresses")

    for addr in addresses:
        desc, strict = classify(addr)
        if desc is None or exact or (allow_private and not strict):
            continue
        where = addr if literal else f"{host} resolves to {addr}, which"
        return addresses, f"{where} is {desc}"
    return addresses, None
