from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronfile.secrets import Masker, MissingVariable, StreamMasker, expand_env, expand_text

ENVIRON = {"API_TOKEN": "tok-12345", "USER": "ops", "EMPTY": ""}


def test_expand_env_substitutes_variables_and_returns_their_values_as_secrets():
    env, secrets = expand_env(
        [("API_TOKEN", "${API_TOKEN}"), ("URL", "https://${USER}@example.com"), ("PLAIN", "x")],
        ENVIRON,
    )
    assert env == {"API_TOKEN": "tok-12345", "URL": "https://ops@example.com", "PLAIN": "x"}
    assert secrets == ["tok-12345", "ops"]


def test_expand_env_leaves_unbraced_dollars_alone():
    env, secrets = expand_env([("A", "$HOME and $1 and $${x")], ENVIRON)
    assert env == {"A": "$HOME and $1 and $${x"}
    assert secrets == []


def test_a_missing_variable_names_itself_and_where_it_is_used():
    with pytest.raises(MissingVariable) as info:
        expand_env([("API_TOKEN", "${API_TOKEN}")], {})
    assert (
        str(info.value)
        == "environment variable API_TOKEN is not set (used as ${API_TOKEN} in env.API_TOKEN)"
    )
    assert info.value.name == "API_TOKEN"
    assert isinstance(info.value, ValueError)


def test_an_empty_variable_is_set():
    assert expand_env([("E", "${EMPTY}")], ENVIRON)[0] == {"E": ""}


def test_expand_text_works_on_any_string():
    assert expand_text("Bearer ${API_TOKEN}", ENVIRON) == ("Bearer tok-12345", ["tok-12345"])
    with pytest.raises(MissingVariable, match=r"NOPE is not set \(used as \$\{NOPE\}\)$"):
        expand_text("${NOPE}", ENVIRON)


def test_masker_replaces_every_occurrence():
    m = Masker(["tok-12345"])
    assert m.mask("a tok-12345 b tok-12345") == "a *** b ***"
    assert m.mask_bytes(b"xtok-12345x") == b"x***x"


def test_masker_ignores_empty_and_short_values():
    m = Masker(["", "a", "abc", "abcd"])
    assert m.mask("a abc abcd") == "a abc ***"
    assert not Masker(["", "ab"])


def test_masker_masks_the_longest_secret_first():
    m = Masker(["secret", "secret-and-more"])
    assert m.mask("secret-and-more secret") == "*** ***"


def test_masker_masks_non_ascii_secrets_in_bytes():
    m = Masker(["pässwörd"])
    assert m.mask_bytes("x pässwörd y".encode()) == b"x *** y"


def test_stream_masker_catches_a_secret_split_across_chunks():
    s = StreamMasker(Masker(["tok-12345"]))
    out = s.feed(b"token=tok-1") + s.feed(b"23") + s.feed(b"45 done\n") + s.flush()
    assert out == b"token=*** done\n"


def test_stream_masker_holds_back_only_what_may_still_become_a_secret():
    s = StreamMasker(["tok-12345"])
    assert s.feed(b"0123456789abcdef") == b"0123456789abcdef"  # nothing here can start it
    assert s.feed(b"xx tok-12") == b"xx "  # the start of a secret waits for the rest
    assert s.flush() == b"tok-12"


def test_overlapping_secrets_leave_no_part_of_either():
    m = Masker(["abcdef", "defghi"])
    assert m.mask("x abcdefghi y") == "x *** y"


def test_masking_is_linear_for_a_long_secret_over_long_output():
    # The case: a 4,001-character secret over megabytes of near-misses; a regex
    # alternation compares 4,000 bytes at each position. Correctness here; the speed is
    # in bench/bench_mask.py.
    secret = "a" * 4000 + "b"
    m = Masker([secret])
    data = b"a" * 200_000 + secret.encode() + b"a" * 1000
    s = m.stream()
    out = b"".join(s.feed(data[i : i + 65536]) for i in range(0, len(data), 65536)) + s.flush()
    assert out == b"a" * 200_000 + b"***" + b"a" * 1000


def test_stream_masker_without_secrets_passes_chunks_through():
    s = StreamMasker(Masker([]))
    assert s.feed(b"abc") == b"abc"
    assert s.flush() == b""


@given(
    text=st.lists(
        st.sampled_from([b"x", b"tok-", b"12345", b"tok-12345", b"secret-", b"secret-long", b"\n"]),
        max_size=30,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10),
)
def test_stream_masking_equals_masking_the_whole_output_for_any_chunking(text, cuts):
    masker = Masker(["tok-12345", "secret-long", "secret"])
    data = b"".join(text)
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    s = masker.stream()
    out = b"".join(s.feed(c) for c in chunks) + s.flush()
    assert out == masker.mask_bytes(data)
