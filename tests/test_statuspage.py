"""The status page of a real daemon, loaded in headless Chromium: a screenshot at desktop
and phone width, and the rendered page's text checked for every job."""

from __future__ import annotations

import html
import re
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from chromium import dump_dom, png_size, screenshot
from engine_helpers import history, read_state, wait_for, write_job
from observe_helpers import HttpDaemon, get

from cronfile.load import load_project
from cronfile.render import status_rows
from cronfile.schedule import get_zone
from cronfile.statuspage import MAX_MARKS, REFRESH_S, next_fires, render_page
from cronfile.stores.file import FileStore

SECRET = "s3cret-token-4711"

JOBS = {
    "fast": 'schedule: "every 1s"\nrepeat: 3\nenv:\n  TOKEN: "${SECRET_TOKEN}"\nshell: "echo token=$TOKEN"\n',
    "broken": 'schedule: "every 1s"\nrepeat: 1\nshell: "echo oops >&2; exit 2"\n',
    "daily-berlin": 'schedule: "0 9 * * *"\ntimezone: Europe/Berlin\nshell: "true"\n',
    "weekday-report-with-a-rather-long-name": 'schedule: "*/30 8-18 * * 1-5"\ntimezone: America/New_York\nshell: "true"\n',
    "paused": 'schedule: "@hourly"\nenabled: false\nshell: "true"\n',
    "far-future": 'schedule: "2099-01-01T00:00:00Z"\nshell: "true"\n',
}


def section(dom: str, job: str) -> str:
    m = re.search(rf'<section class="job" id="job-{re.escape(job)}">(.*?)</section>', dom, re.S)
    assert m, f"no section for {job}"
    return m.group(1)


def section_text(dom: str, job: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", section(dom, job)))).strip()


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    (root / "jobs.d").mkdir(parents=True)
    for name, text in JOBS.items():
        write_job(root, name, text)
    return root


def test_the_status_page_shows_every_job_in_a_real_browser(repo, tmp_path):
    with HttpDaemon(repo, env={"SECRET_TOKEN": SECRET}) as d:
        wait_for(lambda: len(history(repo, "fast")) == 3 and history(repo, "broken"), 30, what="the runs")
        wait_for(lambda: not any(js.get("running") for js in read_state(repo)["jobs"].values()), 10, what="the runs' ends")
        desk = screenshot(d.url, tmp_path / "status-desktop.png", 1280, 1000)
        phone = screenshot(d.url, tmp_path / "status-phone.png", 390, 1800)
        dom = dump_dom(d.url)
        raw = get(d.url)[2]
        fast_runs = history(repo, "fast")
        log_link = re.search(r'href="(/jobs/fast/runs/[^"]+/log)"', dom).group(1)
        log_page = get(d.url.rstrip("/") + log_link)[2]

    assert png_size(desk) == (1280, 1000)
    assert png_size(phone) == (390, 1800)
    assert desk.stat().st_size > 20_000 and phone.stat().st_size > 20_000  # drawn, not blank
    state = read_state(repo)["jobs"]
    for name, text in JOBS.items():
        body = section_text(dom, name)
        schedule = re.search(r'schedule: "?([^"\n]+)"?', text).group(1)
        assert body.startswith(name), body
        assert f"schedule {schedule}" in body
        assert f"zone {state[name]['spec'].get('timezone') or 'UTC'}" in body
        assert state[name]["state"] in body
    assert "completed" in section_text(dom, "fast") and "paused" in section_text(dom, "paused")
    # Recent runs with status, lateness and a link to each log.
    fast = section_text(dom, "fast")
    assert fast.count("success") == 3 and re.search(r"\d+ ms", fast)
    assert len(re.findall(r'href="/jobs/fast/runs/', dom)) == 3
    assert "failed" in section_text(dom, "broken")
    # The daily job's next fire is on the 24-hour timeline; the far one's is not.
    assert len(re.findall(r'<i style="left:\d+\.\d\d%"', section(dom, "daily-berlin"))) == 1
    assert '<div class="tl" title="no fire in the next 24 hours"></div>' in section(dom, "far-future")
    # It refreshes itself, fits a phone, and fetches nothing from elsewhere.
    assert f'<meta http-equiv="refresh" content="{REFRESH_S}">' in raw
    assert '<meta name="viewport" content="width=device-width,initial-scale=1">' in raw
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", raw) and "<script" not in raw
    # The secret reached the run's output; it is masked on the page and in the log.
    assert SECRET not in raw and SECRET not in log_page
    assert "token=***" in html.unescape(log_page)
    assert Path(fast_runs[-1]["log_path"]).read_text().strip() == "token=***"


def test_drift_between_the_files_and_the_applied_set_is_shown(repo, tmp_path):
    """Pure render: the files differ from state.json (a daemon would apply them at once)."""
    from cronfile.apply import apply_project

    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    store = FileStore(repo / ".cronfile")
    apply_project(store, load_project(repo, now=now), now=now, revision=None, source="test")
    write_job(repo, "daily-berlin", 'schedule: "0 10 * * *"\ntimezone: Europe/Berlin\nshell: "true"\n')
    (repo / "jobs.d" / "paused.yaml").unlink()
    write_job(repo, "new-one", 'schedule: "@daily"\nshell: "true"\n')
    project = load_project(repo, now=now)
    state = store.read()
    rows = status_rows(project.specs, state, {}, now, engine_running=True)
    page = render_page(rows, {}, {}, now, zones={r["name"]: get_zone(r["timezone"]) for r in rows}, title="t")
    assert "drift: changed" in section_text(page, "daily-berlin")
    assert "drift: not in files" in section_text(page, "paused")
    assert "drift: not applied" in section_text(page, "new-one")
    assert "drift" not in section_text(page, "fast")


def test_the_timeline_holds_24_hours_of_fires():
    from cronfile.schedule import parse

    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    hourly = next_fires(parse("0 * * * *", "UTC"), now, now + timedelta(hours=24))
    assert len(hourly) == 24 and hourly[0] == now + timedelta(hours=1) and hourly[-1] == now + timedelta(hours=24)
    minutely = next_fires(parse("* * * * *", "UTC"), now, now + timedelta(hours=24))
    assert len(minutely) == MAX_MARKS + 1  # enough to know it is too many to draw


def test_the_log_route_serves_only_run_logs(repo, tmp_path):
    with HttpDaemon(repo) as d:
        wait_for(lambda: history(repo, "broken"), 30, what="a run")
        rid = history(repo, "broken")[-1]["run_id"]
        status, headers, body = get(f"{d.url}jobs/broken/runs/{rid}/log")
        assert status == 200 and "oops" in body
        assert headers["Content-Security-Policy"].startswith("default-src 'none'")
        for bad in ("jobs/broken/runs/..%2F..%2Fstate.json/log", "jobs/..%2F/runs/x/log", f"jobs/nope/runs/{rid}/log"):
            assert get(d.url + bad)[0] == 404, bad
        with urllib.request.urlopen(urllib.request.Request(d.url, method="HEAD"), timeout=20) as resp:
            assert resp.status == 200 and resp.read() == b""



def _served_page(root: Path, store: FileStore) -> str:
    """The status page a StatusServer on 127.0.0.1 serves for ``root`` and ``store``."""
    from cronfile.health import Health
    from cronfile.httpserve import StatusServer, parse_listen

    server = StatusServer(parse_listen("127.0.0.1:0"), root=root, store=store, environ={}, health=Health(lambda: None))
    server.start()
    try:
        return get(server.url)[2]
    finally:
        server.stop()


def test_jobs_sharing_a_schedule_and_jitter_show_each_its_own_fire_times(tmp_path):
    """The page builds each job's Schedule once and keeps it: two jobs with the same
    schedule and jitter differ by their jitter offset, which comes from the name."""
    from cronfile.apply import apply_project
    from cronfile.schedule import jitter_offset

    root = tmp_path / "repo"
    for name in ("alpha", "beta"):
        write_job(root, name, 'schedule: "0 * * * *"\njitter: 30m\nshell: "true"\n')
    offsets = {name: int(jitter_offset(name, timedelta(minutes=30)).total_seconds()) for name in ("alpha", "beta")}
    assert offsets["alpha"] != offsets["beta"]
    now = datetime.now(UTC)
    store = FileStore(root / ".cronfile")
    apply_project(store, load_project(root, now=now), now=now, revision=None, source="test")
    page = _served_page(root, store)
    for name, offset in offsets.items():
        titles = re.findall(r'<i style="left:[\d.]+%" title="([^"]+) UTC"', section(page, name))
        assert len(titles) >= 23, (name, titles)  # hourly, over the 24-hour timeline
        # Every fire of the job at its own offset past the hour (MM:SS), none at the other's.
        assert {t[-5:] for t in titles} == {f"{offset // 60:02d}:{offset % 60:02d}"}, (name, titles)


def test_a_job_whose_next_run_is_already_past_still_shows_its_coming_fires(tmp_path):
    """A next_run in the past (the job is due, or overdue while the engine catches up, or
    the daemon was stopped) must not blank the job's timeline: its fires from now on are
    drawn, and the past next_run is not."""
    from cronfile.apply import apply_project

    root = tmp_path / "repo"
    write_job(root, "hourly", 'schedule: "0 * * * *"\nshell: "true"\n')
    now = datetime.now(UTC)
    then = now - timedelta(hours=3)
    store = FileStore(root / ".cronfile")
    apply_project(store, load_project(root, now=then), now=then, revision=None, source="test")
    past = store.read().jobs["hourly"].next_run
    assert past is not None and past < now
    page = _served_page(root, store)
    titles = re.findall(r'<i style="left:[\d.]+%" title="([^"]+) UTC"', section(page, "hourly"))
    assert len(titles) >= 23, titles  # hourly, over the 24-hour timeline
    assert all(t.endswith(":00:00") for t in titles), titles
    shown = {datetime.strptime(t, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC) for t in titles}
    assert min(shown) > now - timedelta(seconds=1) and past not in shown
