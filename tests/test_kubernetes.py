"""`cronfile render kubernetes`: the mapping, the refusals, the manifests Kubernetes
accepts, and a pod that really runs and delivers.

Every rendered object is validated offline against the Kubernetes OpenAPI schemas of
several versions (the ``kubernetes-validate`` package ships them), strictly (no unknown
field), plus the API server's own rules that no OpenAPI schema states (names, label
syntax, ConfigMap keys, item paths, the 52-character CronJob name).

Golden files live in tests/golden/kubernetes/<case>/: ``repo/`` is the input, and
``rendered/``, ``warnings.txt`` and ``errors.txt`` the expected output. After an
intended change, regenerate them with:

    CRONFILE_UPDATE_GOLDEN=1 pytest tests/test_kubernetes.py
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cli_helpers import ROOT, cronfile
from delivery_servers import RecordingServer

from cronfile import kubernetes as k8s
from cronfile import schedule as sched
from cronfile.load import load_project

GOLDEN = Path(__file__).resolve().parent / "golden" / "kubernetes"
UPDATE = bool(os.environ.get("CRONFILE_UPDATE_GOLDEN"))
# A Monday in January: the next 12 months hold both of 2026's European DST changes.
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
# timeZone is GA since 1.27; three supported minors, the newest the package ships.
K8S_VERSIONS = ("1.30", "1.33", "1.37")
EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if p.is_dir())
REPOS = [ROOT, *EXAMPLES]
# The shipped jobs that Kubernetes cannot take, and why (checked below, not assumed).
REFUSED_SHIPPED = {
    "jobs.d": {"heartbeat": "schedule"},  # */10 * * * * *: seconds
    "every-field": {"everything": "repeat"},  # repeat: 10 has no Kubernetes equivalent
}


def repo_id(repo: Path) -> str:
    return "jobs.d" if repo == ROOT else repo.name


def render_repo(repo: Path, *, skip: bool = False, now: datetime = NOW, **kw: Any) -> k8s.Rendering:
    project = load_project(repo, now=now)
    assert project.ok, [str(p) for p in project.errors]
    options = k8s.Options.from_config(project.config.data, **kw)
    return k8s.render(project, options, k8s.read_repo(project, options), now=now, skip_unsupported=skip)


# -- what Kubernetes checks -------------------------------------------------------------

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def assert_labels(labels: dict[str, str]) -> None:
    for key, value in labels.items():
        name = key.rpartition("/")[2]
        assert LABEL_NAME.match(name), key
        assert LABEL_VALUE.match(value), (key, value)


def assert_valid(objects: dict[str, dict[str, Any]]) -> None:
    """The OpenAPI schemas of every version in K8S_VERSIONS, strict, and the API server's
    rules that the schemas do not state."""
    configmaps = {o["metadata"]["name"]: o for o in objects.values() if o["kind"] == "ConfigMap"}
    for fname, obj in objects.items():
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{fname} is invalid for Kubernetes {version}: {'.'.join(map(str, e.path))}: {e.message}")
        meta = obj["metadata"]
        assert_labels(meta["labels"])
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "cronfile"
        if obj["kind"] == "ConfigMap":
            assert DNS_LABEL.match(meta["name"])
            keys = list(obj.get("data", {})) + list(obj.get("binaryData", {}))
            assert all(CONFIGMAP_KEY.match(k) and not k.startswith("..") for k in keys), keys
            assert len(keys) == len(set(keys))
            continue
        assert obj["kind"] == "CronJob" and obj["apiVersion"] == "batch/v1"
        assert DNS_LABEL.match(meta["name"]) and len(meta["name"]) <= 52, meta["name"]
        spec = obj["spec"]
        assert_schedule_reads_alike(spec["schedule"])
        sched.get_zone(spec["timeZone"])
        pod_meta = spec["jobTemplate"]["spec"]["template"]["metadata"]
        assert_labels(pod_meta["labels"])
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        for c in pod["containers"]:
            assert all(ENV_NAME.match(e["name"]) for e in c["env"])
            assert all("value" in e or "secretKeyRef" in e["valueFrom"] for e in c["env"])
        for vol in pod["volumes"]:
            if "configMap" not in vol:
                continue
            cm = configmaps[vol["configMap"]["name"]]
            keys = set(cm.get("data", {})) | set(cm.get("binaryData", {}))
            for item in vol["configMap"]["items"]:
                assert item["key"] in keys, item
                parts = PurePosixPath(item["path"]).parts
                assert not item["path"].startswith("/") and ".." not in parts, item


def assert_schedule_reads_alike(text: str) -> None:
    """Debian cron ANDs the day fields when one starts with '*'; Kubernetes' cron library
    (robfig/cron) when one is a bare '*'. A rendered schedule must read the same to both,
    so it never starts a day field with '*' unless that field is '*'."""
    if text.startswith("@"):
        return
    fields = text.split()
    assert len(fields) == 5, text
    dom, dow = fields[2], fields[4]
    assert (dom.startswith("*") or dow.startswith("*")) == ("*" in (dom, dow)), text
    assert "7" not in re.split(r"[-,/]", dow), text  # robfig's day-of-week stops at 6


# -- the mapping, unit by unit ----------------------------------------------------------

SCHEDULES = [
    # (schedule, timezone, anchor, expected spec.schedule, expected spec.timeZone)
    ("0 9 * * 1-5", "Europe/Berlin", None, "0 9 * * 1-5", "Europe/Berlin"),
    ("0 9 * * mon-fri", "UTC", None, "0 9 * * 1-5", "UTC"),
    ("*/5 * * * *", "UTC", None, "*/5 * * * *", "UTC"),
    ("0 8 * * 7", "UTC", None, "0 8 * * 0", "UTC"),
    ("0 8 * * 5-7", "UTC", None, "0 8 * * 0,5,6", "UTC"),
    ("0 0 */2 * *", "UTC", None, "0 0 */2 * *", "UTC"),
    ("0 0 1-31/2 * 1", "UTC", None, "0 0 1-31/2 * 1", "UTC"),
    ("0 12 1,15 * fri", "UTC", None, "0 12 1,15 * 5", "UTC"),
    ("0 0 * * */2", "UTC", None, "0 0 * * */2", "UTC"),
    ("0 0 */1 * 1", "UTC", None, "0 0 * * 1", "UTC"),
    ("30 9-17/2 * jan,jul *", "UTC", None, "30 9-17/2 * 1,7 *", "UTC"),
    ("0 */15 * * * *", "UTC", None, "*/15 * * * *", "UTC"),
    ("@daily", "Asia/Tokyo", None, "@daily", "Asia/Tokyo"),
    ("@HOURLY", "UTC", None, "@hourly", "UTC"),
    ("every 30m", "Europe/Berlin", None, "*/30 * * * *", "UTC"),
    ("every 1m", "UTC", None, "* * * * *", "UTC"),
    ("every 15m", "UTC", "2026-01-01T00:05:00Z", "5-50/15 * * * *", "UTC"),
    ("every 1h", "UTC", "2026-01-01T00:20:00Z", "20 * * * *", "UTC"),
    ("every 6h", "UTC", "2026-01-01T03:15:00Z", "15 3-21/6 * * *", "UTC"),
    ("every 12h", "UTC", None, "0 */12 * * *", "UTC"),
    ("every 1d", "America/New_York", "2026-01-01T07:30:00Z", "30 7 * * *", "UTC"),
]


@pytest.mark.parametrize("expr, tz, anchor, want, want_tz", SCHEDULES, ids=[c[0] + (f" from {c[2]}" if c[2] else "") for c in SCHEDULES])
def test_each_schedule_maps_to_the_equivalent_kubernetes_schedule(make_spec, expr, tz, anchor, want, want_tz):
    spec = make_spec(schedule=expr, timezone=tz, anchor=anchor)
    assert k8s.k8s_schedule(spec) == (want, want_tz)
    assert_schedule_reads_alike(want)


@pytest.mark.parametrize("expr, tz, anchor, want, want_tz", SCHEDULES, ids=[c[0] + (f" from {c[2]}" if c[2] else "") for c in SCHEDULES])
def test_the_rendered_schedule_fires_when_the_job_does(make_spec, expr, tz, anchor, want, want_tz):
    # Read back with cronfile's own (Debian) parser: 300 fire times agree, across a
    # year's months and weekdays. assert_schedule_reads_alike ties Debian to robfig.
    spec = make_spec(schedule=expr, timezone=tz, anchor=anchor)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ours = spec.build_schedule().iter_after(start, 300)
    theirs = sched.parse(want, want_tz).iter_after(start, 300)
    assert ours == theirs


REFUSALS = [
    # (schedule, anchor, extra fields, field, reason)
    ("*/10 * * * * *", None, {}, "schedule", "seconds within the minute"),
    ("30 0 * * * *", None, {}, "schedule", "seconds within the minute"),
    ("in 2h", None, {}, "schedule", "fires once"),
    ("2030-06-01T09:00", None, {}, "schedule", "fires once"),
    ("@reboot", None, {}, "schedule", "no such moment"),
    ("every 45m", None, {}, "schedule", "divides a day but not an hour"),
    ("every 7m", None, {}, "schedule", "divides neither an hour nor a day"),
    ("every 5h", None, {}, "schedule", "divides neither an hour nor a day"),
    ("every 2d", None, {}, "schedule", "longer than a day"),
    ("every 90s", None, {}, "schedule", "not a whole number of minutes"),
    ("every 30s", None, {}, "schedule", "not a whole number of minutes"),
    ("every 5m", "2026-01-01T00:00:30Z", {}, "anchor", "not on a whole minute"),
    ("0 0 L * *", None, {}, "schedule", "L, W or #"),
    ("0 0 LW * *", None, {}, "schedule", "L, W or #"),
    ("0 0 15W * *", None, {}, "schedule", "L, W or #"),
    ("0 0 * * 5L", None, {}, "schedule", "L, W or #"),
    ("0 9 * * 1#2", None, {}, "schedule", "L, W or #"),
    ("0 0 */2 * 1", None, {}, "schedule", "Kubernetes' cron library ORs them"),
    ("0 0 1,15 * */2", None, {}, "schedule", "Kubernetes' cron library ORs them"),
    ("@daily", None, {"repeat": 3}, "repeat", "no run limit"),
    ("@daily", None, {"labels": {"owner": "Jane Doe"}}, "labels.owner", "not a Kubernetes label value"),
    ("@daily", None, {"labels": {"a/b/c": "x"}}, "labels.a/b/c", "not a Kubernetes label key"),
]


@pytest.mark.parametrize("expr, anchor, extra, fld, reason", REFUSALS, ids=[f"{c[0]} {c[2] or c[1] or ''}".strip() for c in REFUSALS])
def test_what_kubernetes_cannot_say_is_refused_with_the_reason(tmp_path, expr, anchor, extra, fld, reason):
    job = {"schedule": expr, "shell": "true", **extra}
    if anchor:
        job["anchor"] = anchor
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "job.yaml").write_text(yaml.safe_dump(job))
    r = render_repo(tmp_path)
    assert [(p.field, p.severity) for p in r.refusals] == [(fld, "error")]
    assert reason in r.refusals[0].message
    assert r.files == {} and r.skipped == ["job"]


NAMES = [
    # (prefix, job name, expected)
    ("cronfile", "backup", "cronfile-backup"),
    ("", "backup", "backup"),
    ("acme", "db.backup", "acme-db-backup-" + k8s._short_hash("db.backup")),
    ("acme", "db_backup", "acme-db-backup-" + k8s._short_hash("db_backup")),
    ("acme", "db-backup", "acme-db-backup"),
    ("acme", "trailing-", "acme-trailing-" + k8s._short_hash("trailing-")),
    ("cronfile", "x" * 43, "cronfile-" + "x" * 43),
    ("cronfile", "x" * 44, "cronfile-" + "x" * 36 + "-" + k8s._short_hash("x" * 44)),
    ("cronfile", "a" * 64, "cronfile-" + "a" * 36 + "-" + k8s._short_hash("a" * 64)),
    ("", "_", "job-" + k8s._short_hash("_")),
]


@pytest.mark.parametrize("prefix, job, want", NAMES, ids=[f"{c[0]}|{c[1][:20]}" for c in NAMES])
def test_object_names_are_dns_labels_within_52_characters(prefix, job, want):
    name = k8s.object_name(prefix, job)
    assert name == want
    assert DNS_LABEL.match(name) and len(name) <= 52


def test_names_that_map_alike_stay_apart():
    jobs = ["db.backup", "db_backup", "db-backup", "db.backup.", "a" * 64, "a" * 63 + "b"]
    names = [k8s.object_name("cronfile", j) for j in jobs]
    assert len(set(names)) == len(names)


def test_configmap_keys_are_valid_and_one_to_one():
    paths = [
        "cronfile.yaml",
        "jobs.d/backup.yaml",
        "jobs.d/sub/x.yaml",
        "jobs.d/sub_x.yaml",
        "jobs.d_2fsub_2fx.yaml",
        "jobs.d/with space.yaml",
        "jobs.d/ümlaut.yaml",
        "..odd",
        "deep/" * 60 + "x.yaml",
    ]
    keys = [k8s.configmap_key(p) for p in paths]
    assert keys[:3] == ["cronfile.yaml", "jobs.d_2fbackup.yaml", "jobs.d_2fsub_2fx.yaml"]
    assert all(CONFIGMAP_KEY.match(k) and not k.startswith("..") for k in keys), keys
    assert len(set(keys)) == len(keys)


WARNINGS = [
    # (job fields, the field warned about, or None for no warning)
    ({"concurrency": "queue"}, "concurrency"),
    ({"concurrency": "queue", "catchup": "once"}, "concurrency"),
    ({"starting_deadline": "5s"}, "starting_deadline"),
    ({"starting_deadline": "5s", "catchup": "once"}, None),  # no deadline is rendered
    ({"jitter": "2m"}, "jitter"),
    ({"schedule": "every 15m", "anchor": "2027-01-01T00:00:00Z"}, "anchor"),
    ({"schedule": "every 15m", "anchor": "2025-01-01T00:00:00Z"}, None),
    ({"retries": 2, "deliver": ["stdout"]}, "retries"),
    ({"retries": 2}, None),
    ({"schedule": "30 2 * * *", "timezone": "Europe/Berlin"}, "schedule"),
    ({"schedule": "0 9 * * *", "timezone": "Europe/Berlin"}, None),
    ({"schedule": "30 2 * * *", "timezone": "UTC"}, None),
    ({"schedule": "*/30 * * * *", "timezone": "Europe/Berlin"}, None),
    ({"schedule": "@daily", "timezone": "America/Sao_Paulo"}, None),
]


@pytest.mark.parametrize("fields, warned", WARNINGS, ids=[json.dumps(c[0]) for c in WARNINGS])
def test_a_difference_from_the_daemon_is_warned_naming_the_job(tmp_path, fields, warned):
    job = {"schedule": "0 9 * * *", "shell": "true", **fields}
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "job.yaml").write_text(yaml.safe_dump(job))
    r = render_repo(tmp_path)
    assert [w.field for w in r.warnings] == ([warned] if warned else [])
    assert all(w.message.startswith("job: ") and w.severity == "warning" for w in r.warnings)
    assert r.notes[0].endswith("make these jobs safe to repeat: job")


def test_from_job_is_warned_and_its_job_file_is_mounted(tmp_path):
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "a.yaml").write_text("schedule: '@daily'\nshell: echo a\n")
    (tmp_path / "jobs.d" / "b.yaml").write_text(
        "schedule: '@daily'\nprompt: sum up\nagent: codex\ncontext: {from_job: a}\n"
    )
    r = render_repo(tmp_path)
    assert [(w.field, w.message) for w in r.warnings] == [
        ("context.from_job", "b: each pod starts with an empty state dir, so the prompt gets no output of a")
    ]
    pod = r.objects["cronjob-cronfile-b.yaml"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert [i["path"] for i in pod["volumes"][0]["configMap"]["items"]] == ["jobs.d/a.yaml", "jobs.d/b.yaml"]
    pod = r.objects["cronjob-cronfile-a.yaml"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert [i["path"] for i in pod["volumes"][0]["configMap"]["items"]] == ["jobs.d/a.yaml"]


# -- the shipped repos ------------------------------------------------------------------


@pytest.mark.parametrize("repo", REPOS, ids=repo_id)
def test_every_shipped_repo_renders_objects_kubernetes_accepts(repo):
    r = render_repo(repo, skip=True, image="ghcr.io/acme/cronfile:1.0", namespace="jobs")
    refused = {p.field: p for p in r.refusals}
    want = REFUSED_SHIPPED.get(repo_id(repo), {})
    assert sorted(r.skipped) == sorted(want)
    assert sorted(refused) == sorted(want.values())
    shipped = {s.name for s in load_project(repo).specs}
    assert set(r.names) == shipped - set(want)
    assert r.names, "nothing rendered"
    assert_valid(r.objects)
    kustomization = yaml.safe_load(r.files["kustomization.yaml"])
    assert kustomization["resources"] == [f for f in r.files if f != "kustomization.yaml"]


def test_the_shipped_seconds_job_is_refused_at_its_line_and_nothing_is_written(tmp_path):
    out = tmp_path / "out"
    res = cronfile("render", "kubernetes", "-o", str(out), cwd=ROOT)
    assert res.returncode == 2, res.stderr
    assert res.stderr.splitlines()[0].startswith("jobs.d/heartbeat.yaml:4:11: schedule: '*/10 * * * * *' fires at seconds")
    assert "1 problem found; nothing was changed" in res.stderr
    assert not out.exists()


def test_the_shipped_repo_without_its_seconds_job_renders_and_validates(tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "jobs.d", copy / "jobs.d", ignore=shutil.ignore_patterns("heartbeat.yaml"))
    shutil.copy(ROOT / "cronfile.yaml", copy)
    out = tmp_path / "out"
    res = cronfile("-C", str(copy), "render", "kubernetes", "-o", str(out), "--image", "ghcr.io/acme/cronfile:1.0")
    assert res.returncode == 0, res.stderr
    objects = {p.name: yaml.safe_load(p.read_text()) for p in sorted(out.glob("*.yaml")) if p.name != "kustomization.yaml"}
    assert sorted(objects) == ["configmap-cronfile-jobs.yaml", "cronjob-cronfile-disk-check.yaml", "cronjob-cronfile-uptime.yaml"]
    assert_valid(objects)
    assert "no at-most-once claim" in res.stderr and "disk-check, uptime" in res.stderr


# -- golden files -----------------------------------------------------------------------


def golden_compare(expected: Path, actual: dict[str, str]) -> None:
    if UPDATE:
        if expected.exists():
            shutil.rmtree(expected)
        expected.mkdir(parents=True)
        for name, text in actual.items():
            (expected / name).write_text(text)
    on_disk = {p.name: p.read_text() for p in sorted(expected.iterdir())}
    assert sorted(on_disk) == sorted(actual)
    for name, text in actual.items():
        assert text == on_disk[name], f"{expected / name} differs: CRONFILE_UPDATE_GOLDEN=1 to accept"


def golden_text(path: Path, text: str) -> None:
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text(), f"{path} differs: CRONFILE_UPDATE_GOLDEN=1 to accept"


def test_golden_the_mapping_table(monkeypatch):
    case = GOLDEN / "mapping"
    monkeypatch.chdir(case / "repo")  # problems show paths as the user types them
    r = render_repo(Path("."))
    assert not r.refusals
    golden_compare(case / "rendered", r.files)
    warnings = [str(w) for w in sorted(r.warnings)] + [f"warning: kubernetes: {n}" for n in r.notes]
    golden_text(case / "warnings.txt", "\n".join(warnings) + "\n")
    assert_valid(r.objects)
    assert r.secret_keys == ["API_TOKEN", "SLACK_URL"]


def test_golden_each_refused_form(tmp_path):
    case = GOLDEN / "refused"
    out = tmp_path / "out"
    res = cronfile("render", "kubernetes", "-o", str(out), cwd=case / "repo")
    assert res.returncode == 2
    golden_text(case / "errors.txt", res.stderr)
    assert not out.exists()


def test_golden_names_are_shortened_with_a_hash():
    files = sorted((GOLDEN / "mapping" / "rendered").glob("cronjob-*.yaml"))
    names = {yaml.safe_load(p.read_text())["metadata"]["annotations"]["cronfile.dev/job"]: p.name for p in files}
    long = "nightly-reconciliation-of-customer-invoices-and-ledger-entries"
    assert names[long] == f"cronjob-acme-nightly-reconciliation-of-customer-invoi-{k8s._short_hash(long)}.yaml"
    assert names["db.backup_v2"] == f"cronjob-acme-db-backup-v2-{k8s._short_hash('db.backup_v2')}.yaml"


def test_rerendering_unchanged_files_gives_a_byte_identical_tree(tmp_path):
    repo = GOLDEN / "mapping" / "repo"
    out = tmp_path / "out"
    first = cronfile("-C", str(repo), "render", "kubernetes", "-o", str(out))
    assert first.returncode == 0, first.stderr
    golden = GOLDEN / "mapping" / "rendered"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {p.name: p.read_bytes() for p in golden.iterdir()}
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = cronfile("-C", str(repo), "render", "kubernetes", "-o", str(out), "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["written"] == [] and summary["removed"] == []
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) is not installed")
def test_kustomize_builds_the_rendered_folder_into_the_same_objects():
    rendered = GOLDEN / "mapping" / "rendered"
    res = subprocess.run(["kubectl", "kustomize", str(rendered)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    built = sorted((d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(res.stdout))
    files = [yaml.safe_load(p.read_text()) for p in rendered.glob("*.yaml") if p.name != "kustomization.yaml"]
    assert built == sorted((o["kind"], o["metadata"]["name"]) for o in files)


# -- the command line -------------------------------------------------------------------


def small_repo(root: Path, **jobs: str) -> Path:
    (root / "jobs.d").mkdir(parents=True, exist_ok=True)
    for name, schedule in jobs.items():
        (root / "jobs.d" / f"{name}.yaml").write_text(f'schedule: "{schedule}"\nshell: echo {name}\n')
    return root


def test_a_removed_job_loses_its_file_and_foreign_files_stay(tmp_path):
    repo = small_repo(tmp_path / "repo", a="@daily", b="@hourly")
    out = tmp_path / "out"
    out.mkdir()
    (out / "namespace.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: jobs}\n")
    assert cronfile("-C", str(repo), "render", "kubernetes", "-o", str(out)).returncode == 0
    (repo / "jobs.d" / "b.yaml").unlink()
    res = cronfile("-C", str(repo), "render", "kubernetes", "-o", str(out), "--json")
    assert json.loads(res.stdout)["removed"] == ["cronjob-cronfile-b.yaml"]
    assert sorted(p.name for p in out.iterdir()) == [
        "configmap-cronfile-jobs.yaml", "cronjob-cronfile-a.yaml", "kustomization.yaml", "namespace.yaml",
    ]


def test_a_schedule_edit_warns_that_kubernetes_may_fire_at_once(tmp_path):
    repo = small_repo(tmp_path / "repo", a="0 9 * * *", b="@hourly")
    out = tmp_path / "out"
    assert cronfile("-C", str(repo), "render", "kubernetes", "-o", str(out)).returncode == 0
    small_repo(repo, a="0 7 * * *")
    res = cronfile("render", "kubernetes", "-o", str(out), cwd=repo)
    assert res.returncode == 0
    edits = [line for line in res.stderr.splitlines() if "changes from" in line]
    assert edits == [
        "jobs.d/a.yaml:1:11: warning: schedule: a: changes from '0 9 * * *' (UTC) to '0 7 * * *' (UTC): "
        "on apply, Kubernetes may start a run at once for a time of the new schedule between the last "
        "run and now, within startingDeadlineSeconds (60 s) (kubernetes/kubernetes#63371); suspend the "
        "CronJob before applying if that must not happen"
    ]


def test_output_to_stdout_is_one_yaml_stream(tmp_path):
    repo = small_repo(tmp_path / "repo", a="@daily")
    res = cronfile("-C", str(repo), "render", "kubernetes", "-o", "-", "--namespace", "jobs")
    assert res.returncode == 0, res.stderr
    docs = [d for d in yaml.safe_load_all(res.stdout) if d]
    assert [(d["kind"], d["metadata"]["namespace"]) for d in docs] == [("ConfigMap", "jobs"), ("CronJob", "jobs")]
    assert not (repo / "deploy").exists()


def test_an_unknown_kubernetes_setting_is_a_config_error(tmp_path):
    repo = small_repo(tmp_path / "repo", a="@daily")
    (repo / "cronfile.yaml").write_text("kubernetes:\n  imag: x\n")
    res = cronfile("-C", str(repo), "validate")
    assert res.returncode == 2
    assert "cronfile.yaml:2:3: kubernetes.imag: unknown field (did you mean image?)" in res.stderr


def test_an_invalid_namespace_is_a_usage_error(tmp_path):
    repo = small_repo(tmp_path / "repo", a="@daily")
    res = cronfile("-C", str(repo), "render", "kubernetes", "--namespace", "Jobs_1", "-o", str(tmp_path / "o"))
    assert res.returncode == 2 and "--namespace 'Jobs_1' is not a valid namespace" in res.stderr


def test_skip_unsupported_renders_the_rest_and_lists_what_it_skipped():
    r = render_repo(ROOT, skip=True)
    assert r.skipped == ["heartbeat"]
    assert "cronjob-cronfile-heartbeat.yaml" not in r.files
    # The ConfigMap still carries every reviewed file, unchanged.
    cm = yaml.safe_load(r.files["configmap-cronfile-jobs.yaml"])
    assert cm["data"]["jobs.d_2fheartbeat.yaml"] == (ROOT / "jobs.d" / "heartbeat.yaml").read_text()


def test_the_configmap_carries_the_files_unchanged_and_binary_files_as_base64(tmp_path):
    repo = small_repo(tmp_path / "repo", a="@daily")
    text = "# trailing space \nschedule: '@daily'\r\nshell: \"printf '\\\\t'\"\n"
    (repo / "jobs.d" / "b.yaml").write_text(text)
    (repo / "bin").mkdir()
    (repo / "bin" / "blob").write_bytes(b"\xff\x00binary")
    (repo / "cronfile.yaml").write_text("kubernetes:\n  files: [bin/]\n")
    r = render_repo(repo)
    cm = yaml.safe_load(r.files["configmap-cronfile-jobs.yaml"])
    assert cm["data"]["jobs.d_2fb.yaml"] == text
    assert base64.b64decode(cm["binaryData"]["bin_2fblob"]) == b"\xff\x00binary"
    assert_valid(r.objects)


def test_a_symlinked_job_file_is_mounted_where_cronfile_looks_for_it(tmp_path):
    repo = small_repo(tmp_path / "repo", a="@daily")
    (repo / "shared").mkdir()
    (repo / "shared" / "b.yaml").write_text("schedule: '@hourly'\nshell: echo b\n")
    (repo / "jobs.d" / "b.yaml").symlink_to("../shared/b.yaml")
    r = render_repo(repo)
    pod = r.objects["cronjob-cronfile-b.yaml"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert [i["path"] for i in pod["volumes"][0]["configMap"]["items"]] == ["jobs.d/b.yaml"]


def test_kubernetes_files_that_match_nothing_are_refused(tmp_path):
    repo = small_repo(tmp_path / "repo", a="@daily")
    (repo / "cronfile.yaml").write_text("kubernetes:\n  files: [scripts/, ../outside.sh]\n")
    (tmp_path / "outside.sh").write_text("echo\n")
    r = render_repo(repo)
    assert [(p.field, p.message) for p in r.refusals] == [
        ("kubernetes.files", "'scripts/' matches no file inside the repo"),
        ("kubernetes.files", "'../outside.sh' matches no file inside the repo"),
    ]
    assert r.files == {}


# -- a pod, reproduced ------------------------------------------------------------------


def kubelet_mount(configmap: dict[str, Any], volume: dict[str, Any], target: Path) -> None:
    """What the kubelet's atomic writer makes of a configMap volume with ``items``: the
    files in a timestamped folder, ``..data`` pointing at it, one symlink per top-level
    entry, modes from the items (else defaultMode)."""
    src = volume["configMap"]
    stamp = target / "..2026_01_05_12_00_00.000000001"
    for item in src["items"]:
        key = item["key"]
        data = configmap.get("data", {})
        content = data[key].encode() if key in data else base64.b64decode(configmap["binaryData"][key])
        path = stamp / item["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(item.get("mode", src["defaultMode"]))
    (target / "..data").symlink_to(stamp.name)
    for top in sorted({PurePosixPath(i["path"]).parts[0] for i in src["items"]}):
        (target / top).symlink_to(f"..data/{top}")
    for d in sorted(stamp.rglob("*"), reverse=True):
        if d.is_dir():
            d.chmod(0o555)  # the volume is mounted read-only


POD_REPO = {
    "cronfile.yaml": "allow_private_webhooks: true   # the test's server runs on 127.0.0.1\n"
    "kubernetes:\n  secret: pod-env\n  files: [bin/]\n",
    "jobs.d/hello.yaml": (
        'schedule: "*/5 * * * *"\n'
        "command: [./bin/hello.sh]\n"
        'env: {GREETING: "${GREETING}"}\n'
        "deliver:\n  - webhook: ${HOOK_URL}\n  - stdout\n"
    ),
    "bin/hello.sh": (
        "#!/bin/sh\n"
        'echo "$GREETING (${#GREETING} characters) from $CRONFILE_JOB; retries off: $CRONFILE_NO_RETRIES"\n'
    ),
}


def test_a_pod_runs_the_job_and_delivers(tmp_path):
    repo = tmp_path / "repo"
    for rel, text in POD_REPO.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    (repo / "bin" / "hello.sh").chmod(0o755)
    r = render_repo(repo, image="cronfile:test")
    assert not r.refusals
    assert_valid(r.objects)
    cm = r.objects["configmap-cronfile-jobs.yaml"]
    cronjob = r.objects["cronjob-cronfile-hello.yaml"]
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]

    # The pod's filesystem: each volume where the container mounts it.
    volumes = {v["name"]: v for v in pod["volumes"]}
    where: dict[str, str] = {}
    for mount in container["volumeMounts"]:
        local = tmp_path / "pod" / mount["name"]
        local.mkdir(parents=True)
        vol = volumes[mount["name"]]
        if "configMap" in vol:
            assert mount["readOnly"] is True
            kubelet_mount(cm, vol, local)
        else:
            assert vol == {"name": mount["name"], "emptyDir": {}}  # fresh, thrown away
        where[mount["mountPath"]] = str(local)

    with RecordingServer() as hook:
        secret = {"GREETING": "Guten Morgen", "HOOK_URL": f"{hook.url}/hook"}
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
        for entry in container["env"]:
            if "value" in entry:
                env[entry["name"]] = entry["value"]
            else:
                ref = entry["valueFrom"]["secretKeyRef"]
                assert ref["name"] == "pod-env"
                env[entry["name"]] = secret[ref["key"]]
        assert container["command"][0] == "cronfile"
        argv = [sys.executable, "-m", "cronfile", *(where.get(a, a) for a in container["command"][1:])]
        res = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr
        # The job got the Secret's value; cronfile masks it in everything it shows.
        assert res.stdout == "*** (12 characters) from hello; retries off: 1\n"
        (req,) = hook.requests
    payload = req.json()
    assert (payload["job"], payload["status"]) == ("hello", "success")
    # ${VAR} values from the Secret reach the job, never a delivery.
    assert payload["output"] == "*** (12 characters) from hello; retries off: 1\n"
    # Recorded in the pod's own (throw-away) state dir, delivery included.
    from cronfile.history import merged_history
    from cronfile.stores.sqlite import SqliteStore

    (run,) = merged_history(SqliteStore(Path(where["/state"])), "hello", None)
    assert run["status"] == "success" and run["trigger"] == "manual"
    assert [(d["target"].split(":")[0], d["ok"]) for d in run["deliveries"]] == [("webhook", True)]


def test_the_pod_deadline_leaves_room_for_cronfiles_own_timeout(tmp_path):
    # cronfile's timeout must fire first, so the run is stopped, recorded and delivered
    # as `timeout`; the Kubernetes deadline is only the backstop. A context script has a
    # timeout of its own before the agent's.
    repo = small_repo(tmp_path / "repo")
    (repo / "jobs.d" / "a.yaml").write_text("schedule: '@daily'\ntimeout: 20m\nshell: 'true'\n")
    (repo / "jobs.d" / "b.yaml").write_text(
        "schedule: '@daily'\ntimeout: 5m\nprompt: hi\nagent: codex\ncontext: {script: echo ctx}\n"
    )
    r = render_repo(repo)

    def deadline(job: str) -> int:
        pod = r.objects[f"cronjob-cronfile-{job}.yaml"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        return pod["activeDeadlineSeconds"]

    assert deadline("a") == 20 * 60 + k8s.DEADLINE_MARGIN
    assert deadline("b") == 2 * 5 * 60 + k8s.DEADLINE_MARGIN


def test_the_pod_runs_one_attempt_because_kubernetes_does_the_retries(tmp_path):
    repo = tmp_path / "repo"
    (repo / "jobs.d").mkdir(parents=True)
    (repo / "jobs.d" / "flaky.yaml").write_text("schedule: '@daily'\nshell: echo try; exit 1\nretries: 1\nretry_backoff: 1s\n")
    res = cronfile("-C", str(repo), "--state-dir", str(tmp_path / "state"), "run", "flaky", env={k8s.NO_RETRIES_ENV: "1"})
    assert res.returncode == 1
    assert res.stdout.count("try") == 1


def test_the_public_names_are_exported():
    assert sorted(k8s.__all__) == k8s.__all__
    assert all(hasattr(k8s, n) for n in k8s.__all__)
