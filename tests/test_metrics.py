"""`/metrics` and `/healthz` of a real daemon, scraped over HTTP after real runs and
parsed with prometheus-client's own parser."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from delivery_servers import RecordingServer
from engine_helpers import Daemon, history, read_state, state_snapshot, wait_for, write_job
from observe_helpers import HttpDaemon, get
from prometheus_client.parser import text_string_to_metric_families

from cronfile.health import SLACK, Health


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """name -> {sorted labels: value} for every sample."""
    status, headers, body = get(url + "metrics")
    assert status == 200, body
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    (root / "jobs.d").mkdir(parents=True)
    (root / "cronfile.yaml").write_text("allow_private_webhooks: true\n")
    return root


def test_metrics_count_the_runs_a_daemon_made(repo):
    with RecordingServer() as hook:
        write_job(repo, "ok", f'schedule: "every 1s"\nrepeat: 3\nshell: echo fine\ndeliver: [{{webhook: "{hook.url}/ok"}}]\n')
        write_job(repo, "bad", 'schedule: "every 1s"\nrepeat: 2\nshell: "echo broken; exit 3"\n')
        write_job(repo, "later", 'schedule: "0 0 1 1 *"\ntimezone: Europe/Berlin\nshell: "true"\n')
        write_job(repo, "off", 'schedule: "@daily"\nenabled: false\nshell: "true"\n')
        with HttpDaemon(repo) as d:

            def settled() -> bool:
                jobs = read_state(repo)["jobs"]
                done = all(jobs[j]["state"] == "completed" and not jobs[j].get("running") for j in ("ok", "bad"))
                delivered = [r for r in history(repo, "ok") if r.get("deliveries")]
                return done and len(delivered) == 3

            wait_for(settled, 30, what="3 runs of ok (delivered) and 2 of bad")

            def counted() -> bool:  # a run is counted just after its history line
                got = scrape(d.url)
                runs = sum(got.get("cronfile_runs_total", {}).values())
                return runs == 5 and sum(got.get("cronfile_deliveries_total", {}).values()) == 3

            wait_for(counted, 20, what="the 5 runs and 3 deliveries to be counted")
            m = scrape(d.url)
            state = read_state(repo)["jobs"]
            ok_runs, bad_runs = history(repo, "ok"), history(repo, "bad")

    assert m["cronfile_runs_total"][(("job", "ok"), ("status", "success"))] == 3
    assert m["cronfile_runs_total"][(("job", "bad"), ("status", "failed"))] == 2
    assert m["cronfile_run_duration_seconds_count"][(("job", "ok"),)] == 3
    assert m["cronfile_run_duration_seconds_count"][(("job", "bad"),)] == 2
    late = [r for r in ok_runs + bad_runs if r.get("lateness_ms") is not None]
    assert m["cronfile_run_lateness_seconds_count"][()] == len(late) == 5
    assert m["cronfile_run_lateness_seconds_sum"][()] == pytest.approx(sum(r["lateness_ms"] for r in late) / 1000, abs=0.01)
    assert m["cronfile_run_lateness_seconds_bucket"][(("le", "+Inf"),)] == 5
    assert m["cronfile_deliveries_total"] == {(("job", "ok"), ("outcome", "ok"), ("target", "webhook")): 3}
    assert len(hook.requests) == 3
    # Read from state.json at the scrape: the next fire of a job that still fires, none
    # for the completed and paused ones; jobs by state.
    assert m["cronfile_job_next_run_timestamp_seconds"] == {(("job", "later"),): ts(state["later"]["next_run"])}
    last_ok = max(ts(r["finished_at"]) for r in ok_runs if r["status"] == "success")
    assert m["cronfile_job_last_success_timestamp_seconds"] == {(("job", "ok"),): pytest.approx(last_ok, abs=0.001)}
    # The longest gap among the next fires: a leap year's 366 days for a yearly job.
    assert m["cronfile_job_period_seconds"] == {(("job", "later"),): 366 * 86400}
    assert m["cronfile_jobs"] == {(("state", "completed"),): 2, (("state", "paused"),): 1, (("state", "scheduled"),): 1}
    # The engine's own.
    assert m["cronfile_up"][()] == 1
    assert m["cronfile_reloads_total"][()] >= 1
    assert m["cronfile_last_reload_timestamp_seconds"][()] > 0
    assert list(m["cronfile_applied_revision_info"]) == [(("revision", ""),)]  # not a git repo
    assert "cronfile_build_info" in m


def test_last_success_survives_a_restart_and_a_later_failure(repo):
    write_job(repo, "flip", f'schedule: "every 1s"\nshell: "test ! -e {repo}/broken"\n')
    with HttpDaemon(repo) as d:
        wait_for(lambda: any(r["status"] == "success" for r in history(repo, "flip")), 20, what="a good run")
        assert d.stop() == 0
    (repo / "broken").touch()
    success = [r for r in history(repo, "flip") if r["status"] == "success"][-1]
    # Now the job fails: its last run is a failure; its last success is still known,
    # from the history, by a new daemon that never saw it happen.
    with HttpDaemon(repo) as d:
        wait_for(lambda: history(repo, "flip")[-1]["status"] == "failed", 20, what="a failed run")
        # The history line is written before the run is counted: wait for the count.
        wait_for(
            lambda: (("job", "flip"), ("status", "failed")) in scrape(d.url).get("cronfile_runs_total", {}),
            20,
            what="the failed run to be counted",
        )
        m = scrape(d.url)
    assert m["cronfile_job_last_success_timestamp_seconds"][(("job", "flip"),)] == pytest.approx(ts(success["finished_at"]), abs=0.001)
    assert (("job", "flip"), ("status", "success")) not in m["cronfile_runs_total"]
    assert m["cronfile_runs_total"][(("job", "flip"), ("status", "failed"))] >= 1


def test_healthz_is_ok_while_the_loop_runs_and_names_an_unwritable_state_dir(repo):
    write_job(repo, "idle", 'schedule: "0 0 1 1 *"\nshell: "true"\n')
    with HttpDaemon(repo) as d:
        status, _, body = get(d.url + "healthz")
        assert (status, body) == (200, "ok\n")
        # The state dir replaced by a file: nothing can be written there any more.
        state_dir = repo / ".cronfile"
        moved = repo / "moved-state"
        state_dir.rename(moved)
        state_dir.write_text("not a folder\n")
        try:
            status, _, body = get(d.url + "healthz")
            assert status == 503
            # Said by the probe, or by the loop's pass if the watcher woke it first
            # (seen under load): either way the state dir is named with the reason.
            assert body.startswith(("the state dir is not writable: Not a directory", "cannot claim runs: cannot set up the state dir")), body
            assert "Not a directory" in body, body
        finally:
            state_dir.unlink()
            moved.rename(state_dir)
        assert get(d.url + "healthz")[:3:2] == (200, "ok\n")
        d.stop()


def test_nothing_over_http_writes(repo):
    write_job(repo, "idle", 'schedule: "0 0 1 1 *"\nshell: "true"\n')
    with HttpDaemon(repo) as d:
        before = state_snapshot(repo / ".cronfile")
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            status, headers, _ = get(d.url, method=method)
            assert status == 405 and headers["Allow"] == "GET, HEAD", method
        assert get(d.url + "nope")[0] == 404
        assert get(d.url + "jobs/idle/runs/..%2F..%2Fstate.json/log")[0] == 404
        assert state_snapshot(repo / ".cronfile") == before


def test_a_bare_port_listens_on_loopback_only(repo):
    from delivery_servers import free_port

    write_job(repo, "idle", 'schedule: "0 0 1 1 *"\nshell: "true"\n')
    port = free_port()
    (repo / "cronfile.yaml").write_text(f"http: {port}\nlog_format: json\n")
    with Daemon(repo) as d:  # no flags: the port and the format from cronfile.yaml
        d.wait_log(rf'"url": "http://127.0.0.1:{port}/"')
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200


def test_a_stuck_loop_is_unhealthy_after_its_planned_wake():
    """The loop's liveness on the monotonic clock, moved by hand."""
    from datetime import UTC, timedelta

    now = [1000.0]
    h = Health(lambda: None, monotonic=lambda: now[0])
    assert "starting" in h.loop_problem()
    t = datetime(2026, 1, 1, tzinfo=UTC)
    h.ready(None, t)
    h.pass_done(None, t, t + timedelta(seconds=30))
    now[0] += 30 + SLACK - 1
    assert h.loop_problem() is None
    now[0] += 2
    assert h.loop_problem().startswith("the engine loop is stuck: no pass for 61s")
    h.pass_done(None, t, t + timedelta(hours=5))  # sleeps an hour at most: stuck after that
    now[0] += 3600 + SLACK + 1
    assert "stuck" in h.loop_problem()
    h.stopping()
    assert h.loop_problem() == "the daemon is stopping"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9100", ("127.0.0.1", 9100)),
        (9100, ("127.0.0.1", 9100)),
        ("0.0.0.0:9100", ("0.0.0.0", 9100)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:9100", ("::1", 9100)),
    ],
    ids=["bare-port", "yaml-int", "all-interfaces", "any-port", "ipv6"],
)
def test_listen_addresses_parse_and_a_bare_port_is_loopback(text, expected):
    from cronfile.httpserve import parse_listen

    assert tuple(parse_listen(text)) == expected


@pytest.mark.parametrize("text", [":9100", "host:", "9100:host", "1.2.3.4:99999", "a b:1"], ids=["no-host", "no-port", "reversed", "big-port", "space"])
def test_bad_listen_addresses_are_refused(text):
    from cronfile.errors import UsageError
    from cronfile.httpserve import parse_listen

    with pytest.raises(UsageError):
        parse_listen(text)


def test_an_ipv6_loopback_address_serves(repo):
    import socket

    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).bind(("::1", 0))
    except OSError as e:
        raise AssertionError(f"this host has no IPv6 loopback: {e}") from None
    write_job(repo, "idle", 'schedule: "0 0 1 1 *"\nshell: "true"\n')
    with Daemon(repo, args=("--http", "[::1]:0", "--log-format", "json")) as d:
        line = d.wait_log(r'"event": "http.listening"')[0]
        url = json.loads(line)["url"]
        assert url.startswith("http://[::1]:")
        assert get(url + "healthz")[0] == 200


def test_a_failed_delivery_is_counted_as_failed(repo):
    from delivery_servers import closed_port

    url = f"http://127.0.0.1:{closed_port()}/hook"
    write_job(repo, "once", f'schedule: "every 1s"\nrepeat: 1\nshell: echo hi\ndeliver: [{{webhook: "{url}"}}]\n')
    with HttpDaemon(repo) as d:
        wait_for(lambda: any(r.get("deliveries") for r in history(repo, "once")), 30, what="the delivery's three tries")
        m = scrape(d.url)
        d.wait_log(r'"event": "delivery.failed"')
    assert m["cronfile_deliveries_total"] == {(("job", "once"), ("outcome", "failed"), ("target", "webhook")): 1}
    assert m["cronfile_runs_total"] == {(("job", "once"), ("status", "success")): 1}  # a delivery never changes the run
