"""Masking cost: megabytes of output through the run's stream masker, against the regex
alternation it replaced (issue 15: a 4,001-character secret over 20 MB of output ran past
a 10 s timeout).

    python bench/bench_mask.py [--tiny] [MB ...]     # default 1 and 20 MB; --tiny: 1 MB

Cases: ordinary text with 5 short secrets (an API token, a webhook URL...), and the
adversarial one: one secret of 4,000 `a` and a `b`, over output of `a` (every position
is a 4,000-byte near miss). The run masks only up to output_limit (1 MiB by default):
what is beyond it is counted and dropped, never scanned, so the 1 MB row is what a run
costs; the 20 MB rows show the masker's own slope.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cronfile.secrets import Masker  # noqa: E402

CHUNK = 64 * 1024


def stream(masker: Masker, data: bytes) -> float:
    t0 = time.perf_counter()
    s = masker.stream()
    for i in range(0, len(data), CHUNK):
        s.feed(data[i : i + CHUNK])
    s.flush()
    return time.perf_counter() - t0


def regex(secrets: list[str], data: bytes, budget: float) -> str:
    """The old masker (one alternation, longest first), stopped after ``budget`` s."""
    rx = re.compile(b"|".join(re.escape(s.encode()) for s in sorted(secrets, key=len, reverse=True)))
    t0 = time.perf_counter()
    done = 0
    for i in range(0, len(data), CHUNK):
        rx.sub(b"***", data[i : i + CHUNK + 4096])
        done += CHUNK
        if time.perf_counter() - t0 > budget:
            return f"> {budget:.0f} s ({done / 1e6:.1f} MB done)"
    return f"{time.perf_counter() - t0:.2f} s"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sizes", nargs="*", type=float)
    p.add_argument("--tiny", action="store_true")
    args = p.parse_args()
    sizes = args.sizes or ([1.0] if args.tiny else [1.0, 20.0])
    budget = 2.0 if args.tiny else 10.0
    ordinary = ["sk-live-0123456789abcdef", "https://hooks.example.com/T000/B000/XXXX", "hunter2-password", "ghp_abcdefghijklmnop", "tok-12345"]
    line = b"2026-03-02 09:00:01 INFO fetched 120 items from https://api.example.com/v2 in 41 ms\n"
    long_secret = "a" * 4000 + "b"
    print(f"{'case':<44} {'MB':>6} {'automaton':>10} {'MB/s':>7}   old regex")
    for mb in sizes:
        n = int(mb * 1e6)
        text = (line * (n // len(line) + 1))[:n]
        worst = b"a" * n
        for name, secrets, data in (("ordinary log text, 5 secrets", ordinary, text), ("4,001-byte secret + 1 short, over aaaa...", [long_secret, "tok-12345"], worst)):
            took = stream(Masker(secrets), data)
            old = regex(secrets, data, budget)
            print(f"{name:<44} {mb:>6.1f} {took:>9.2f}s {mb / took:>7.1f}   {old}")


if __name__ == "__main__":
    main()
