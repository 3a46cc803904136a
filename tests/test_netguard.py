"""netguard.py: which URLs a webhook may reach, decided over every resolved address.

The resolver is always a fake here: no test touches DNS.
"""

from __future__ import annotations

import socket

import pytest

from cronfile.delivery.netguard import check_url, classify


def resolver_for(table: dict[str, list[str]]):
    """A getaddrinfo stand-in answering from ``table`` (and failing like it otherwise)."""
    calls: list[str] = []

    def resolve(host, port, *args, **kwargs):
        calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        out = []
        for addr in table[host]:
            family = socket.AF_INET6 if ":" in addr else socket.AF_INET
            sockaddr = (addr, port, 0, 0) if family == socket.AF_INET6 else (addr, port)
            # getaddrinfo answers once per socket type; the guard must not care.
            out.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
            out.append((family, socket.SOCK_DGRAM, 17, "", sockaddr))
        return out

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


PUBLIC = "93.184.215.14"
DNS = resolver_for(
    {
        "hooks.example.com": [PUBLIC],
        "a.b.example.com": [PUBLIC],
        "example.com": [PUBLIC],
        "evilexample.com": [PUBLIC],
        "metadata.example.com": ["169.254.169.254"],
        "intranet.example.com": ["10.1.2.3"],
        "mixed.example.com": [PUBLIC, "192.168.1.5"],
        "v6.example.com": ["2606:2800:220:1:248:1893:25c8:1946"],
        "aws6.example.com": ["fd00:ec2::254"],
        "local.test": ["127.0.0.1"],
    }
)


def check(url, allowlist=(), allow_private=False, resolver=DNS):
    return check_url(url, allowlist=allowlist, allow_private=allow_private, resolver=resolver)


# -- scheme and host -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://hooks.example.com/x", "scheme 'ftp' is not http or https"),
        ("file:///etc/passwd", "scheme 'file' is not http or https"),
        ("gopher://hooks.example.com/", "scheme 'gopher' is not http or https"),
        ("hooks.example.com/x", "scheme '(none)' is not http or https"),
        ("http:///path-only", "the URL has no host"),
        ("http://hooks.example.com:99999/", "invalid URL"),
    ],
    ids=["ftp", "file", "gopher", "no-scheme", "no-host", "bad-port"],
)
def test_it_refuses_urls_that_are_not_plain_http(url, reason):
    addresses, why = check(url)
    assert addresses == []
    assert why is not None and why.startswith(reason)


def test_it_accepts_a_public_https_url_and_returns_its_addresses():
    assert check("https://hooks.example.com/T0/B0") == ([PUBLIC], None)


def test_it_accepts_a_public_ipv6_address():
    assert check("https://v6.example.com/")[1] is None


def test_upper_case_schemes_and_hosts_are_the_same_url():
    assert check("HTTPS://HOOKS.Example.COM/x") == ([PUBLIC], None)


# -- the allowlist -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "allowlist", "allowed"),
    [
        ("hooks.example.com", ["hooks.example.com"], True),
        ("hooks.example.com", ["HOOKS.example.com."], True),
        ("hooks.example.com", ["other.example.com"], False),
        ("hooks.example.com", ["*.example.com"], True),
        ("a.b.example.com", ["*.example.com"], True),
        ("example.com", ["*.example.com"], False),
        ("example.com", ["*.example.com", "example.com"], True),
        ("evilexample.com", ["*.example.com"], False),
        ("hooks.example.com", [], True),
    ],
    ids=[
        "exact",
        "exact-any-case-trailing-dot",
        "another-host",
        "wildcard-subdomain",
        "wildcard-any-depth",
        "wildcard-not-the-bare-domain",
        "bare-domain-listed-too",
        "wildcard-is-not-a-suffix-match",
        "empty-list-allows-any-public-host",
    ],
)
def test_the_allowlist_matches_exact_hosts_and_subdomain_wildcards(host, allowlist, allowed):
    _, why = check(f"https://{host}/", allowlist)
    if allowed:
        assert why is None
    else:
        assert why == f"{host} is not in webhook_allowlist"


def test_a_host_outside_the_allowlist_is_not_even_resolved():
    resolver = resolver_for({"hooks.example.com": [PUBLIC]})
    check("https://hooks.example.com/", ["other.example.com"], resolver=resolver)
    assert resolver.calls == []


# -- addresses -----------------------------------------------------------------------------


def test_a_name_resolving_to_the_metadata_address_is_refused():
    addresses, why = check("http://metadata.example.com/latest/meta-data/")
    assert addresses == ["169.254.169.254"]
    assert (
        why == "metadata.example.com resolves to 169.254.169.254, which is a cloud metadata address"
    )


def test_metadata_stays_refused_with_allow_private_and_a_wildcard_entry():
    _, why = check("http://metadata.example.com/", ["*.example.com"], allow_private=True)
    assert why is not None and "cloud metadata" in why


def test_an_exact_allowlist_entry_lets_even_link_local_through():
    assert check("http://metadata.example.com/", ["metadata.example.com"])[1] is None


def test_ipv6_metadata_is_refused():
    _, why = check("http://aws6.example.com/")
    assert why is not None and "fd00:ec2::254" in why and "cloud metadata" in why


def test_every_resolved_address_is_checked_not_just_the_first():
    addresses, why = check("https://mixed.example.com/")
    assert addresses == [PUBLIC, "192.168.1.5"]
    assert why == "mixed.example.com resolves to 192.168.1.5, which is private"


def test_duplicate_answers_per_socket_type_are_folded():
    assert check("https://hooks.example.com/")[0] == [PUBLIC]


@pytest.mark.parametrize(
    ("url", "allowlist", "allow_private", "refused"),
    [
        ("http://intranet.example.com/", (), False, True),
        ("http://intranet.example.com/", (), True, False),
        ("http://intranet.example.com/", ("intranet.example.com",), False, False),
        ("http://intranet.example.com/", ("*.example.com",), False, True),
        ("http://intranet.example.com/", ("*.example.com",), True, False),
        ("http://local.test:8080/", (), False, True),
        ("http://local.test:8080/", (), True, False),
        ("http://127.0.0.1:8080/", ("127.0.0.1",), False, False),
        ("http://[::1]:8080/", (), False, True),
        ("http://[::1]:8080/", ("[::1]",), False, False),
        ("http://169.254.169.254/", (), True, True),
        ("http://169.254.169.254/", ("169.254.169.254",), False, False),
        ("http://[fe80::1]/", (), True, True),
    ],
    ids=[
        "private-refused",
        "private-with-allow-private",
        "private-listed-exactly",
        "private-under-a-wildcard-only",
        "private-wildcard-and-allow-private",
        "loopback-name",
        "loopback-name-with-allow-private",
        "loopback-literal-listed",
        "ipv6-loopback",
        "ipv6-loopback-listed-in-brackets",
        "metadata-literal-despite-allow-private",
        "metadata-literal-listed",
        "ipv6-link-local-despite-allow-private",
    ],
)
def test_private_and_link_local_rules(url, allowlist, allow_private, refused):
    _, why = check(url, allowlist, allow_private)
    assert (why is not None) is refused, why


def test_an_ip_literal_is_judged_without_asking_dns():
    def no_dns(*args, **kwargs):
        raise AssertionError("resolver called for an IP literal")

    assert check("http://169.254.169.254/", resolver=no_dns) == (
        ["169.254.169.254"],
        "169.254.169.254 is a cloud metadata address",
    )


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1"])
def test_legacy_numeric_hosts_are_judged_by_what_they_resolve_to(host):
    # inet_aton's shorthands are not IP literals to the ipaddress module, so they go to
    # the (real, offline) resolver, which answers 127.0.0.1.
    addresses, why = check_url(f"http://{host}/", allowlist=(), allow_private=False)
    assert addresses == ["127.0.0.1"]
    assert why == f"{host} resolves to 127.0.0.1, which is loopback"


def test_a_name_that_does_not_resolve_raises_for_the_caller_to_retry():
    with pytest.raises(OSError):
        check("https://nowhere.example.com/")


def test_a_resolver_with_no_answers_raises():
    with pytest.raises(OSError, match="no addresses"):
        check("https://hooks.example.com/", resolver=lambda host, port: [])


@pytest.mark.parametrize(
    ("address", "description", "strict"),
    [
        ("8.8.8.8", None, False),
        ("2001:4860:4860::8888", None, False),
        ("169.254.169.254", "a cloud metadata address", True),
        ("100.100.100.200", "a cloud metadata address", True),
        ("fd00:ec2::254", "a cloud metadata address", True),
        ("169.254.1.1", "link-local", True),
        ("fe80::1%eth0", "link-local", True),
        ("::ffff:169.254.169.254", "a cloud metadata address", True),
        ("64:ff9b::a9fe:a9fe", "a cloud metadata address", True),
        ("2002:a9fe:a9fe::", "a cloud metadata address", True),
        ("127.0.0.1", "loopback", False),
        ("::1", "loopback", False),
        ("0.0.0.0", "unspecified", False),
        ("::", "unspecified", False),
        ("10.0.0.1", "private", False),
        ("172.16.5.4", "private", False),
        ("192.168.0.1", "private", False),
        ("fd12:3456::1", "private", False),
        ("::ffff:10.0.0.1", "private", False),
        ("100.64.0.1", "not a public address", False),
        ("224.0.0.1", "multicast", False),
    ],
    ids=lambda v: str(v),
)
def test_classify_names_what_kind_of_address_it_is(address, description, strict):
    assert classify(address) == (description, strict)
