"""The alert rule of docs/observability.md, checked by promtool and evaluated by a real
Prometheus (Debian's `prometheus` package) that scrapes a real daemon on 127.0.0.1."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

from delivery_servers import free_port
from engine_helpers import history, wait_for, write_job
from observe_helpers import HttpDaemon

DOC = Path(__file__).resolve().parents[1] / "docs" / "observability.md"
INSTALL = "apt-get update && apt-get install -y prometheus"


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise AssertionError(f"{name} is not installed; the documented alert rule is tested with it: {INSTALL}")
    return found


def doc_rules() -> str:
    blocks = re.findall(r"```yaml\n(groups:.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1, "one rules block in docs/observability.md"
    return blocks[0]


def test_promtool_accepts_the_documented_rules(tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text(doc_rules())
    res = subprocess.run([tool("promtool"), "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 2 rules found" in res.stdout


def test_prometheus_scrapes_the_daemon_and_the_alert_fires_for_a_job_that_stopped_succeeding(tmp_path):
    repo = tmp_path / "repo"
    (repo / "jobs.d").mkdir(parents=True)
    marker = tmp_path / "ran-once"
    # Succeeds once, then fails every second: after two periods (2 s) the alert holds.
    write_job(repo, "flaky", f'schedule: "every 1s"\nshell: "test ! -e {marker} || exit 1; touch {marker}"\n')
    write_job(repo, "steady", 'schedule: "every 1s"\nshell: "true"\n')
    prom_port = free_port()
    # The documented rules, with `for: 5m` cut to nothing: the test checks the expression.
    (tmp_path / "rules.yml").write_text(re.sub(r"for: \w+", "for: 0s", doc_rules()))
    with HttpDaemon(repo) as d:
        target = d.url.split("//", 1)[1].rstrip("/")
        (tmp_path / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: [{tmp_path / 'rules.yml'}]\n"
            # honor_labels, as the doc says: cronfile's `job` label is the cron job's name,
            # not renamed to exported_job.
            f"scrape_configs: [{{job_name: cronfile, honor_labels: true, static_configs: [{{targets: ['{target}']}}]}}]\n"
        )
        prom = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "prometheus.log").open("wb"),
            start_new_session=True,
        )
        api = f"http://127.0.0.1:{prom_port}/api/v1/"

        def get(path: str) -> dict | None:
            try:
                with urllib.request.urlopen(api + path, timeout=5) as resp:
                    return json.loads(resp.read())["data"]
            except OSError:
                return None

        try:
            def up() -> bool:
                data = get("targets")
                return bool(data) and any(t["health"] == "up" for t in data["activeTargets"])

            wait_for(up, 60, interval=0.5, what="Prometheus to scrape the daemon")

            def firing() -> list[dict]:
                data = get("alerts") or {"alerts": []}
                return [a for a in data["alerts"] if a["labels"]["alertname"] == "CronfileJobNotSucceeding" and a["state"] == "firing"]

            alerts = wait_for(firing, 60, interval=0.5, what="the alert to fire")
            assert {a["labels"]["job"] for a in alerts} == {"flaky"}  # never the steady one
            assert [r for r in history(repo, "flaky") if r["status"] == "success"]
            value = get("query?query=" + urllib.request.quote('cronfile_runs_total{status="failed"}'))
            assert value and float(value["result"][0]["value"][1]) >= 2
        finally:
            prom.send_signal(signal.SIGTERM)
            prom.wait(30)
