"""SIGKILL between a run's end and its delivery: the delivery is still made, once, after
the restart. At each point on that path (the run's record written; its outbox entry
written; the worker about to send), a real daemon is killed; a webhook receiver on
127.0.0.1 counts the requests of that run by their idempotency key."""

from __future__ import annotations

import pytest
from delivery_servers import RecordingServer

from .harness import (
    DaemonProc,
    child_env,
    make_repo,
    read_records,
    read_state,
    running_ids,
    wait_for,
)

POINTS = ["after-history", "after-outbox", "during-delivery"]


@pytest.mark.parametrize("point", POINTS)
def test_a_sigkill_between_a_runs_end_and_its_delivery_delays_it_never_loses_it(tmp_path, point):
    with RecordingServer() as srv:
        url = f"{srv.url}/hook"
        job = f'schedule: "@reboot"\nshell: "echo made"\ndeliver:\n  - webhook: {url}\n'
        root = make_repo(tmp_path / "repo", {"j": job}, "allow_private_webhooks: true\nshutdown_grace: 1s\n")
        state_dir = root / ".cronfile"
        d = DaemonProc(root, env=child_env(CRONFILE_FAULT=f"{point}:1"), tag="crash")
        code = d.wait(20)
        d.kill9()
        assert code == -9 and f"fault injected at {point}" in d.text(), d.text()[-2000:]
        (rid,) = read_records(state_dir).runs["j"]
        assert srv.requests == [], "nothing may have been sent before the kill"
        # Not @reboot any more: the restart must not start a second run to deliver.
        make_repo(root, {"j": job.replace("@reboot", "@daily")})
        with DaemonProc(root, tag="after") as d2:
            d2.wait_log("cronfile daemon")
            wait_for(lambda: srv.requests, timeout=20, what="the delivery after the restart")
            wait_for(lambda: read_records(state_dir).runs["j"][rid].get("deliveries"), timeout=20, what="its result recorded")
            assert d2.stop() == 0, d2.text()[-2000:]
        keys = [r.headers.get("x-cronfile-delivery") for r in srv.requests]
    assert keys == [f"{rid}.0"], keys  # once
    runs = read_records(state_dir).runs["j"]
    assert runs[rid]["status"] == "success"
    assert [x["ok"] for x in runs[rid]["deliveries"]] == [True]
    assert running_ids(read_state(state_dir)) == {}
    assert not list((state_dir / "outbox").glob("*.json"))
