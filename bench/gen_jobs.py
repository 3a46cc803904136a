"""Write a jobs repo of N job files for the benchmarks.

    python bench/gen_jobs.py DIR -n 10000                  # varied jobs, none due soon
    python bench/gen_jobs.py DIR -n 100 --profile firing --period 10 --out /tmp/starts

Profiles:

- ``quiet`` (default): jobs as people write them (shell, command and prompt jobs; cron,
  6-field, macro and one-off schedules in five timezones; timeouts, retries, labels,
  jitter, deliveries), spread over folders of 100 files. Every fixed hour is at least
  three hours away from now in the job's timezone, so nothing fires while a benchmark
  runs: the idle and scale benchmarks measure the engine, not the jobs.
- ``firing``: every job fires every ``--period`` seconds (6-field cron) and does nothing
  but record its own start time: ``date +%s.%N >> OUT/<name>``.

The output is deterministic for a given ``--seed`` and hour of the day.
"""

from __future__ import annotations

import argparse
import random
import shutil
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney")
PER_FOLDER = 100


def _safe_hours(tz: str, now: datetime) -> list[int]:
    """Hours of the day at least 3 hours away from now (both ways) in ``tz``."""
    here = now.astimezone(ZoneInfo(tz)).hour
    return [h for h in range(24) if min((h - here) % 24, (here - h) % 24) >= 3]


def _quiet_job(rng: random.Random, i: int, now: datetime) -> str:
    tz = rng.choice(ZONES)
    h = rng.choice(_safe_hours(tz, now))
    m = rng.randrange(60)
    form = rng.randrange(8)
    if form == 0:
        schedule = f"{m} {h} * * *"
    elif form == 1:
        schedule = f"{m} {h} * * 1-5"
    elif form == 2:
        schedule = f"{m} {h} {rng.randint(1, 28)} * *"
    elif form == 3:
        schedule = f"{m} {h} * * {rng.choice(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'])}"
    elif form == 4:
        schedule = f"{m} {h} 1 */3 *"
    elif form == 5:
        schedule = f"{rng.randrange(60)} {m} {h} * * *"  # 6 fields, seconds first
    elif form == 6:
        schedule = f"{m} {h} 1W * *"
    else:
        schedule = f"{now.year + 1}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {h:02d}:{m:02d}"
    lines = [
        "# yaml-language-server: $schema=../../schema/job.schema.json",
        f"description: Benchmark job {i} ({['report', 'cleanup', 'sync', 'triage', 'backup'][i % 5]})",
        f'schedule: "{schedule}"',
        f"timezone: {tz}",
    ]
    kind = rng.random()
    if kind < 0.6:
        lines.append(f"shell: echo job {i} && test -d /tmp")
    elif kind < 0.85:
        lines.append(f'command: [echo, "job {i}"]')
    else:
        lines += [
            "prompt: |",
            f"  Summarize what changed in area {i % 37} since yesterday.",
            "  List action items, one per line.",
            "agent: codex",
        ]
    if rng.random() < 0.5:
        lines.append(f"timeout: {rng.choice(['30s', '5m', '20m', '1h'])}")
    if rng.random() < 0.3:
        lines += [f"retries: {rng.randint(1, 3)}", f"retry_backoff: {rng.choice(['10s', '1m'])}"]
    if rng.random() < 0.2:
        lines.append(f"concurrency: {rng.choice(['forbid', 'queue', 'allow', 'replace'])}")
    if rng.random() < 0.2:
        lines.append(f"jitter: {rng.choice(['30s', '2m'])}")
    if rng.random() < 0.4:
        lines.append(f"labels: {{team: t{i % 13}, tier: {rng.choice(['gold', 'silver'])}}}")
    if rng.random() < 0.3:
        lines += ["deliver:", "  - stdout"]
    if rng.random() < 0.02:
        lines.append("enabled: false")
    return "\n".join(lines) + "\n"


def _firing_job(i: int, period: int, out: Path) -> str:
    seconds = "*" if period == 1 else f"*/{period}"
    return f'schedule: "{seconds} * * * * *"\nshell: date +%s.%N >> {out}/job-{i:05d}\n'


def generate(
    root: Path,
    n: int,
    *,
    profile: str = "quiet",
    period: int = 10,
    out: Path | None = None,
    max_concurrent: int = 4,
    seed: int = 7,
    now: datetime | None = None,
) -> list[Path]:
    """(Re)create ``root/jobs.d`` with ``n`` job files and ``root/cronfile.yaml``;
    return the job files."""
    root = Path(root)
    jobs = root / "jobs.d"
    if jobs.exists():
        shutil.rmtree(jobs)
    jobs.mkdir(parents=True)
    (root / "cronfile.yaml").write_text(f"timezone: UTC\nmax_concurrent: {max_concurrent}\n")
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    if profile == "firing":
        if out is None:
            raise ValueError("--profile firing needs --out")
        if 60 % period:
            raise ValueError("--period must divide 60")
        Path(out).mkdir(parents=True, exist_ok=True)
    paths = []
    folders = n > 2 * PER_FOLDER
    for i in range(n):
        folder = jobs / f"team-{i // PER_FOLDER:03d}" if folders else jobs
        if folders and i % PER_FOLDER == 0:
            folder.mkdir()
        path = folder / f"job-{i:05d}.yaml"
        text = _firing_job(i, period, Path(out or ".")) if profile == "firing" else _quiet_job(rng, i, now)
        path.write_text(text)
        paths.append(path)
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir", type=Path, help="the jobs repo to (re)create: DIR/jobs.d and DIR/cronfile.yaml")
    p.add_argument("-n", type=int, default=1000, help="how many job files (default 1000)")
    p.add_argument("--profile", choices=["quiet", "firing"], default="quiet")
    p.add_argument("--period", type=int, default=10, help="firing: seconds between runs (divides 60)")
    p.add_argument("--out", type=Path, help="firing: folder the jobs record their start times in")
    p.add_argument("--max-concurrent", type=int, default=4)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()
    paths = generate(a.dir, a.n, profile=a.profile, period=a.period, out=a.out, max_concurrent=a.max_concurrent, seed=a.seed)
    print(f"wrote {len(paths)} job files under {a.dir / 'jobs.d'}")


if __name__ == "__main__":
    main()
