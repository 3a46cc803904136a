"""Loading job files: positions, schema and semantic checks, defaults, safety limits."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from cronfile.load import load_project
from cronfile.spec import load_schema
from cronfile.yamlsrc import load_documents

ROOT = Path(__file__).resolve().parent.parent


def write(root: Path, rel: str, text: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def messages(project) -> list[str]:
    return [str(p) for p in project.errors]


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs.d").mkdir()
    return tmp_path


# -- YAML layer ------------------------------------------------------------------------


def test_yaml_keeps_on_yes_and_timestamps_as_strings():
    docs, problems = load_documents("on: [failure]\na: yes\nb: 1:30\nc: 2026-06-01T09:00:00Z\n", "f.yaml")
    assert not problems
    assert docs[0].data == {"on": ["failure"], "a": "yes", "b": "1:30", "c": "2026-06-01T09:00:00Z"}


def test_yaml_records_line_and_column_of_each_value():
    docs, _ = load_documents("name: x\ndeliver:\n  - webhook: http://h\n    on: [failure]\n", "f.yaml")
    assert docs[0].where(("deliver", 0, "on")) == (4, 9)
    assert docs[0].where(("deliver", 0, "on"), key=True) == (4, 5)


def test_yaml_duplicate_keys_are_an_error_naming_the_first():
    _, problems = load_documents("a: 1\nb: 2\na: 3\n", "f.yaml")
    assert [str(p) for p in problems] == ["f.yaml:3:1: a: duplicate key (first at line 1)"]


def test_yaml_bomb_is_refused_fast():
    levels = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 10):
        levels.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    start = time.perf_counter()
    _, problems = load_documents("\n".join(levels) + "\n", "bomb.yaml")
    assert time.perf_counter() - start < 5
    assert "an alias expanding too far" in problems[0].message


@pytest.mark.parametrize(
    "text, phrase",
    [
        ("[" * 2000, "nested deeper"),
        ("a:\n\tb: 1\n", "tabs"),
        ("a: [1, 2\n", "invalid YAML"),
        ("a: !!python/object:os.system x\n", "unsupported YAML tag"),
    ],
    ids=["deep-nesting", "tab-indent", "unclosed-flow", "python-tag"],
)
def test_yaml_broken_input_is_a_problem_not_an_exception(text, phrase):
    _, problems = load_documents(text, "bad.yaml")
    assert problems and phrase in problems[0].message


def test_yaml_binary_and_non_utf8_files_are_refused():
    assert "binary" in load_documents(b"\x00\x01", "b.yaml")[1][0].message
    assert "UTF-8" in load_documents(b"a: \xff\xfe", "b.yaml")[1][0].message


# -- job files -------------------------------------------------------------------------


def test_a_single_job_file_is_named_after_its_stem(repo):
    write(repo, "jobs.d/backup.yaml", 'schedule: "@daily"\nshell: "true"\n')
    project = load_project(repo)
    assert project.ok, messages(project)
    assert [s.name for s in project.specs] == ["backup"]


def test_several_jobs_in_one_file_must_name_themselves(repo):
    write(repo, "jobs.d/many.yaml", 'schedule: "@daily"\nshell: a\n---\nname: b\nschedule: "@daily"\nshell: b\n')
    project = load_project(repo)
    assert messages(project) == ["jobs.d/many.yaml:1:1: name: required when a file holds several jobs"]


def test_duplicate_names_across_files_name_both_places(repo):
    write(repo, "jobs.d/a.yaml", 'name: dup\nschedule: "@daily"\nshell: a\n')
    write(repo, "jobs.d/sub/b.yml", 'name: dup\nschedule: "@daily"\nshell: b\n')
    project = load_project(repo)
    assert messages(project) == [
        "jobs.d/sub/b.yml:1:1: name: duplicate job name 'dup' (also in jobs.d/a.yaml:1)"
    ]


def test_design_example_error_for_a_bad_duration(repo):
    write(
        repo,
        "jobs.d/backup.yaml",
        'description: nightly\nschedule: "0 3 * * *"\nshell: tar\n\n\n\ntimeout: "15 minutes"\n',
    )
    project = load_project(repo)
    assert messages(project) == ['jobs.d/backup.yaml:7:10: timeout: "15 minutes" is not a duration (e.g. 15m)']


def test_every_problem_is_listed_with_file_line_and_column(repo):
    write(
        repo,
        "jobs.d/broken.yaml",
        "schedule: '61 * * * *'\n"
        "shell: x\n"
        "timout: 5m\n"
        "concurrency: sometimes\n"
        "retries: -1\n"
        "timezone: Mars/Base\n",
    )
    got = messages(load_project(repo))
    assert "jobs.d/broken.yaml:3:1: timout: unknown field (did you mean timeout?)" in got
    assert 'jobs.d/broken.yaml:4:14: concurrency: "sometimes" is not one of forbid, queue, allow, replace' in got
    assert "jobs.d/broken.yaml:5:10: retries: -1 is less than the minimum 0" in got
    assert any(m.startswith("jobs.d/broken.yaml:6:11: timezone: ") and "Mars/Base" in m for m in got)
    assert len(got) == 4  # the schedule is not checked against an unknown timezone


def test_a_bad_cron_field_points_at_the_schedule(repo):
    write(repo, "jobs.d/x.yaml", "shell: x\nschedule: '61 * * * *'\n")
    (msg,) = messages(load_project(repo))
    assert msg.startswith("jobs.d/x.yaml:2:11: schedule: ") and "61" in msg


@pytest.mark.parametrize(
    "body, expected",
    [
        ("schedule: '@daily'\n", "x.yaml:1:1: a job needs one of prompt, shell or command"),
        ("schedule: '@daily'\nshell: a\ncommand: [b]\n", "x.yaml:3:1: command: only one of prompt, shell or command (found shell, command)"),
        ("shell: a\n", "x.yaml:1:1: schedule: missing (required)"),
        ("schedule: '@daily'\nshell: a\ndeliver: [email]\n", "x.yaml:3:11: deliver[0]: unknown target 'email': expected stdout or a mapping with one of webhook, healthchecks, telegram, email, stdout"),
        ("schedule: '@daily'\nshell: a\ndeliver:\n  - webhook: http://h\n    token: t\n", "x.yaml:5:5: deliver[0].token: does not apply to a webhook target"),
        ("schedule: '@daily'\nshell: a\ndeliver:\n  - webhook: http://h\n    format: teams\n", 'x.yaml:5:13: deliver[0].format: "teams" is not one of json, slack, discord, text'),
        ("schedule: '@daily'\nshell: a\ndeliver:\n  - webhook: ftp://h\n", "x.yaml:4:14: deliver[0].webhook: 'ftp://h' is not an http(s) URL"),
        ("schedule: '@daily'\nshell: a\nagent: codex\n", "x.yaml:3:1: agent: only applies to prompt jobs"),
        ("schedule: '@daily'\nprompt: hi\nagent: nope\n", "x.yaml:3:8: agent: unknown agent profile 'nope' (known: claude, codex, gemini, llm)"),
        ("schedule: '@daily'\nprompt: hi\n", "x.yaml:2:9: agent: a prompt job needs agent: (or default_agent in cronfile.yaml)"),
        ("name: Bad Name\nschedule: '@daily'\nshell: a\n", 'x.yaml:1:7: name: "Bad Name" is not a valid job name'),
        ("schedule: '@daily'\nprompt: a\nagent: llm\ncontext: {from_job: ghost}\n", "x.yaml:4:21: context.from_job: no job named 'ghost'"),
        ("- a\n- b\n", "x.yaml:1:1: a job must be a mapping, got a list"),
    ],
    ids=["no-action", "two-actions", "no-schedule", "bad-target", "option-of-other-target", "bad-format",
         "not-http", "agent-on-shell-job", "unknown-agent", "prompt-without-agent", "bad-name", "unknown-from-job", "not-a-mapping"],
)
def test_rejections_say_what_was_expected(repo, body, expected):
    write(repo, "jobs.d/x.yaml", body)
    got = messages(load_project(repo))
    assert any(m.startswith("jobs.d/" + expected) for m in got), got


def test_defaults_from_config_apply_and_env_merges_key_by_key(repo):
    write(repo, "cronfile.yaml", "timezone: Europe/Berlin\ndefaults:\n  timeout: 30m\n  env: {A: '1', B: '2'}\n")
    write(repo, "jobs.d/x.yaml", "schedule: '@daily'\nshell: a\nenv: {B: three}\n")
    project = load_project(repo)
    assert project.ok, messages(project)
    (spec,) = project.specs
    assert spec.timeout == 1800
    assert spec.timezone == "Europe/Berlin"
    assert dict(spec.env) == {"A": "1", "B": "three"}


def test_a_bad_default_points_at_cronfile_yaml(repo):
    write(repo, "cronfile.yaml", "defaults:\n  timout: 30m\n  schedule: '@daily'\n")
    got = messages(load_project(repo))
    assert "cronfile.yaml:2:3: defaults.timout: unknown field (did you mean timeout?)" in got
    assert "cronfile.yaml:3:3: defaults.schedule: cannot be a default: it is what makes each job itself" in got


def test_unknown_config_key_is_an_error(repo):
    write(repo, "cronfile.yaml", "max_concurent: 3\n")
    assert messages(load_project(repo)) == ["cronfile.yaml:1:1: max_concurent: unknown field (did you mean max_concurrent?)"]


def test_a_symlink_leading_outside_the_repo_is_refused(repo, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "evil.yaml"
    outside.write_text("schedule: '@daily'\nshell: cat /etc/shadow\n")
    os.symlink(outside, repo / "jobs.d" / "evil.yaml")
    write(repo, "inside/ok.yaml", "schedule: '@daily'\nshell: a\n")
    os.symlink(repo / "inside" / "ok.yaml", repo / "jobs.d" / "ok.yaml")
    project = load_project(repo)
    assert messages(project) == ["jobs.d/evil.yaml: symlink leads outside the repo; refused"]
    assert [s.name for s in project.specs] == ["ok"]


def test_hidden_and_non_yaml_files_are_ignored(repo):
    write(repo, "jobs.d/.draft.yaml", "garbage: [")
    write(repo, "jobs.d/notes.txt", "garbage: [")
    write(repo, "jobs.d/ok.yaml", "schedule: '@daily'\nshell: a\n")
    assert load_project(repo).ok


def test_an_unset_variable_is_a_warning_not_an_error(repo):
    write(repo, "jobs.d/x.yaml", "schedule: '@daily'\nshell: a\nenv: {T: '${NOPE_NOT_SET}'}\n")
    project = load_project(repo, environ={})
    assert project.ok
    assert any("${NOPE_NOT_SET} is not set" in str(w) for w in project.warnings)


def test_spec_keeps_variable_references_not_values(repo, monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "hunter2hunter2")
    write(repo, "jobs.d/x.yaml", "schedule: '@daily'\nshell: a\nenv: {T: '${SECRET_TOKEN}'}\n")
    (spec,) = load_project(repo).specs
    assert "hunter2" not in json.dumps(spec.data)


def test_schedule_signature_covers_only_fire_time_fields(repo):
    write(repo, "jobs.d/x.yaml", "schedule: '0 9 * * *'\nshell: a\n")
    a = load_project(repo).specs[0]
    write(repo, "jobs.d/x.yaml", "schedule: '0  9 * * *'\nshell: b\ndescription: new\ntimeout: 5m\n")
    b = load_project(repo).specs[0]
    assert a.schedule_sig == b.schedule_sig and a.spec_hash != b.spec_hash
    write(repo, "jobs.d/x.yaml", "schedule: '0 9 * * *'\nshell: a\ntimezone: Europe/Berlin\n")
    assert load_project(repo).specs[0].schedule_sig != a.schedule_sig
    write(repo, "jobs.d/x.yaml", "schedule: '0 9 * * *'\nshell: a\njitter: 60s\n")
    c = load_project(repo).specs[0]
    write(repo, "jobs.d/x.yaml", "schedule: '0 9 * * *'\nshell: a\njitter: 1m\n")
    assert c.schedule_sig == load_project(repo).specs[0].schedule_sig != a.schedule_sig


# -- shipped files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "folder",
    [ROOT] + sorted(p for p in (ROOT / "examples").iterdir() if p.is_dir()),
    ids=lambda p: "jobs.d" if p == ROOT else p.name,
)
def test_shipped_job_repos_validate(folder, monkeypatch):
    monkeypatch.chdir(folder)
    project = load_project(folder)
    assert project.ok, messages(project)
    assert project.specs


def test_schema_files_ship_inside_the_package_unchanged():
    for kind in ("job", "config"):
        top = json.loads((ROOT / "schema" / f"{kind}.schema.json").read_text())
        assert top == load_schema(kind)


def _properties(schema):
    for name, prop in schema.get("properties", {}).items():
        yield name, prop
        yield from _properties(prop)


@pytest.mark.parametrize("kind", ["job", "config"])
def test_every_schema_field_has_a_description_and_an_example(kind):
    schema = load_schema(kind)
    missing = [n for n, p in _properties(schema) if "description" not in p or "examples" not in p]
    targets = schema.get("$defs", {}).get("target", {}).get("oneOf", [{}, {}])[1:]
    for t in targets:
        missing += [n for n, p in _properties(t) if "description" not in p or "examples" not in p]
    if kind == "config":
        missing = [m for m in missing if m not in ("host", "port", "starttls", "ssl", "username", "password", "from")]
    assert missing == []


def test_a_bad_default_is_reported_once_at_the_config_not_in_every_job(repo):
    write(repo, "cronfile.yaml", "defaults:\n  timeout: 15 minutes\n")
    write(repo, "jobs.d/a.yaml", "schedule: '@daily'\nshell: a\n")
    write(repo, "jobs.d/b.yaml", "schedule: '@daily'\nshell: b\ntimeout: 5m\n")
    got = messages(load_project(repo))
    assert 'cronfile.yaml:2:12: defaults.timeout: "15 minutes" is not a duration (e.g. 15m)' in got
    assert "jobs.d/a.yaml:1:1: inherits invalid defaults from cronfile.yaml" in got
    assert not any(m.startswith("jobs.d/b.yaml") for m in got)  # sets its own timeout
    assert len(got) == 2


def test_a_bad_file_name_does_not_hide_the_files_other_problems(repo):
    write(repo, "jobs.d/Bad_Name.yaml", "schedule: '@daily'\nprompt: p\nagent: nosuch\n")
    got = messages(load_project(repo))
    assert any("the file name 'Bad_Name' is not a valid job name" in m for m in got)
    assert any("unknown agent profile 'nosuch'" in m for m in got)


def test_numbers_are_yaml_1_2_and_env_values_keep_their_text(repo):
    write(repo, "jobs.d/x.yaml", "schedule: '@daily'\nshell: a\nretries: 010\nrepeat: 0x10\nenv: {UMASK: 0022, VER: 1.10, ON: true}\n")
    (spec,) = load_project(repo).specs
    assert spec.retries == 10 and spec.repeat == 16
    assert dict(spec.env) == {"UMASK": "0022", "VER": "1.10", "ON": "true"}


def test_a_name_with_a_trailing_newline_is_refused(repo):
    write(repo, "jobs.d/x.yaml", 'name: "backup\\n"\nschedule: "@daily"\nshell: a\n')
    assert messages(load_project(repo))
