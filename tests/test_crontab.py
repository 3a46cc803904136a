"""`cronfile import crontab`: every crontab entry becomes a job that means what the line
meant, read as Debian cron reads it; tested on cron files that Debian packages ship
(tests/data/crontab, origins in its README)."""

from __future__ import annotations

import json
import os
import shlex
import stat
from pathlib import Path

import pytest
import yaml
from cli_helpers import ROOT, cronfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cronfile.crontab import convert, derive_name, is_system_path, render_job, split_percent
from cronfile.spec import Config, is_job_name, job_from_document
from cronfile.yamlsrc import load_documents

DATA = ROOT / "tests" / "data" / "crontab"
DEBIAN = sorted([DATA / "etc" / "crontab", *(DATA / "etc" / "cron.d").iterdir()])


def jobs_of(text: str, *, system: bool = False, tz: str = "UTC", taken=()):
    jobs, problems = convert(text, source="crontab", system=system, timezone=tz, taken=taken)
    return {j.name: dict(j.data) for j in jobs}, [str(p) for p in problems]


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("echo hi", ("echo hi", None)),
        (r"date +\%d", ("date +%d", None)),
        ("mail -s hi root%line one%line two", ("mail -s hi root", "line one\nline two\n")),
        (r"cat%100\% sure%", ("cat", "100% sure\n")),
        ("cat%", ("cat", None)),
        (r"printf '\n' %a\b", ("printf '\\n' ", "a\\b\n")),
    ],
    ids=["plain", "escaped-percent", "stdin-lines", "escaped-in-stdin", "empty-stdin", "other-backslashes-kept"],
)
def test_percent_splits_command_and_stdin_as_debian_cron_does(command, expected):
    assert split_percent(command) == expected


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ("cd / && run-parts --report /etc/cron.hourly", "run-parts-cron.hourly"),
        ("test -x /usr/bin/certbot -a \\! -d /run/systemd/system && perl -e 'sleep int(rand(43200))' && certbot -q renew", "certbot-renew"),
        ("if [ -x /usr/sbin/logcheck ]; then nice -n10 /usr/sbin/logcheck -R; fi", "logcheck"),
        ("test -e /run/systemd/system || SERVICE_MODE=1 /sbin/e2scrub_all -A -r", "e2scrub-all"),
        ("/home/me/bin/Backup_DB.sh >> /var/log/backup.log 2>&1", "backup-db.sh"),
        ("'unbalanced", "unbalanced"),
        ("$HOME/bin/x", "x"),
        (";;", "job"),
    ],
    ids=["run-parts", "guards-and-one-liners", "if-then-nice", "env-prefix", "path-and-redirects", "bad-quote", "variable-path", "no-word"],
)
def test_names_come_from_the_main_command(command, name):
    assert derive_name(command) == name


def test_environment_lines_apply_to_the_entries_below_them():
    jobs, problems = jobs_of(
        "\n".join(
            [
                "0 1 * * * first",
                "CRON_TZ=Europe/Berlin",
                'GREETING = "hello world"',
                "MAILTO=ops@example.com,dev@example.com",
                "SHELL=/bin/bash",
                "0 2 * * * second",
                "MAILTO=''",
                "TZ=America/New_York",
                "SHELL=/bin/sh",
                "0 3 * * * third",
            ]
        )
    )
    assert problems == []
    assert jobs["first"]["timezone"] == "UTC" and "env" not in jobs["first"] and "deliver" not in jobs["first"]
    assert jobs["first"]["shell"] == "first"
    second = jobs["second"]
    assert second["timezone"] == "Europe/Berlin"
    assert second["env"] == {"GREETING": "hello world"}
    assert second["deliver"] == [{"email": ["ops@example.com", "dev@example.com"]}]
    assert second["command"] == ["/bin/bash", "-c", "second"] and "shell" not in second
    third = jobs["third"]
    assert third["timezone"] == "America/New_York"
    assert third["env"] == {"GREETING": "hello world", "TZ": "America/New_York"}  # cron hands TZ on
    assert "deliver" not in third  # MAILTO="" mails nothing
    assert third["shell"] == "third"


def test_macros_and_reboot_are_kept_and_a_comment_just_above_is_the_description():
    jobs, problems = jobs_of(
        "# Rotate the logs\n@daily logrotate /etc/logrotate.conf\n\n# not adjacent\n\n@reboot warm-cache\n@HOURLY ping-home\n"
    )
    assert problems == []
    assert jobs["logrotate-logrotate.conf"]["schedule"] == "@daily"
    assert jobs["logrotate-logrotate.conf"]["description"] == "Rotate the logs"
    assert jobs["warm-cache"]["schedule"] == "@reboot" and "description" not in jobs["warm-cache"]
    assert jobs["ping-home"]["schedule"] == "@hourly"


def test_a_commented_out_entry_is_not_a_description():
    jobs, _ = jobs_of("# Previous day summary\n# 7 0 * * 1-5 /usr/lib/sysstat/sa2 -A\n7 0 * * * /usr/lib/sysstat/sa2 -A\n")
    assert "description" not in jobs["sa2"]


def test_names_are_unique_against_each_other_and_the_names_taken():
    jobs, _ = jobs_of("* * * * * backup /a\n* * * * * backup /a\n* * * * * backup /a\n", taken={"backup-a"})
    assert sorted(jobs) == ["backup-a-2", "backup-a-3", "backup-a-4"]


def test_jobs_keep_crons_overlap_and_no_timeout():
    jobs, _ = jobs_of("* * * * * long-job\n")
    assert jobs["long-job"]["concurrency"] == "allow"
    assert jobs["long-job"]["timeout"] == "1w"


def test_unconvertible_lines_are_listed_with_their_line_numbers():
    _, problems = jobs_of(
        "\n".join(
            [
                "61 * * * * too-late",  # 1
                "* * * *",  # 2
                "@every 5m tick",  # 3
                "0 0 30 2 * never",  # 4
                "CRON_TZ=Mars/Base",  # 5
                "0 9 * * * on-mars",  # 6
                "CRON_TZ=UTC",  # 7
                "0 9 * * * fine",  # 8
                "KEY=${SECRET}",  # 9
                "* * * * * %only input",  # 10
            ]
        )
    )
    lines = [p.split(":")[1] for p in problems]
    assert lines == ["1", "2", "3", "4", "5", "6", "9", "10"]
    assert "minute" in problems[0] and "61" in problems[0]
    assert "never fire" in problems[3]
    assert "schedule: every 5m" in problems[2]
    assert "Mars/Base" in problems[5]


def test_commands_run_in_the_users_home_or_a_home_line():
    homes = {None: "/home/me", "root": "/root"}
    jobs, _ = convert(
        "0 1 * * * first\nHOME=/srv/app\n0 2 * * * second\n",
        source="crontab", system=False, timezone="UTC", home=homes.get,
    )
    # cron changes into the home before the command; a workdir must stay in the repo
    assert [j.data["shell"] for j in jobs] == ["cd /home/me && first", "cd /srv/app && second"]
    assert all("workdir" not in j.data for j in jobs)
    jobs, _ = convert(
        "0 1 * * * root first\n0 2 * * * nobody-here second\n",
        source="crontab", system=True, timezone="UTC", home=homes.get,
    )
    assert jobs[0].data["shell"] == "cd /root && first"
    assert jobs[1].data["shell"] == "second" and "no user nobody-here here" in jobs[1].notes[0]


def test_the_system_format_reads_a_user_field():
    jobs, problems = jobs_of("17 * * * * root cd / && run-parts /etc/cron.hourly\n@reboot www-data warm\n", system=True)
    assert problems == []
    assert jobs["run-parts-cron.hourly"]["shell"] == "cd / && run-parts /etc/cron.hourly"
    assert jobs["run-parts-cron.hourly"]["labels"] == {"cron-user": "root"}
    assert jobs["warm"]["labels"] == {"cron-user": "www-data"}
    _, problems = jobs_of("17 * * * * root\n", system=True)
    assert problems and "no command" in problems[0]


def test_system_format_is_recognised_by_path():
    assert is_system_path("/etc/crontab") and is_system_path("/etc/cron.d/certbot")
    assert not is_system_path("my.crontab") and not is_system_path("/var/spool/cron/crontabs/me")


# -- the command, on Debian's own files --------------------------------------------------


def _entries(path: Path) -> list[tuple[int, str]]:
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        s = line.strip()
        if s and not s.startswith("#") and "=" not in s.split()[0]:
            out.append((n, line))
    return out


@pytest.mark.parametrize("path", DEBIAN, ids=lambda p: p.name)
def test_debian_cron_files_import_into_a_valid_repo_that_keeps_each_entry(path, tmp_path):
    res = cronfile("import", "crontab", str(path), "--tz", "Europe/Berlin", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    made = json.loads(res.stdout)
    entries = _entries(path)
    assert [m["line"] for m in made] == [n for n, _ in entries]
    assert len({m["name"] for m in made}) == len(made)
    for m, (_, line) in zip(made, entries, strict=True):
        job = yaml.safe_load(Path(tmp_path, m["path"]).read_text())
        fields = line.split(None, 6) if not line.startswith("@") else line.split(None, 2)
        schedule = " ".join(fields[:5]) if not line.startswith("@") else fields[0]
        user, command = (fields[5], fields[6]) if not line.startswith("@") else (fields[1], fields[2])
        assert job["schedule"] == schedule
        assert job["labels"] == {"cron-user": user}
        # cron runs the command in the user's home: `cd HOME && ` where that user exists here
        home = os.path.expanduser(f"~{user}")
        prefix = f"cd {shlex.quote(home)} && " if not home.startswith("~") else ""
        assert job["shell"] == prefix + command.replace("\\%", "%")
        assert job["timezone"] == "Europe/Berlin"
    check = cronfile("validate", cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert f"ok: {len(made)} job" in check.stderr


def test_the_mdadm_entry_keeps_its_escaped_percent_and_its_comment(tmp_path):
    assert cronfile("import", "crontab", str(DATA / "etc/cron.d/mdadm"), "--tz", "UTC", cwd=tmp_path).returncode == 0
    job = yaml.safe_load((tmp_path / "jobs.d" / "checkarray.yaml").read_text())
    assert "$(date +%d)" in job["shell"]
    assert job["description"].startswith("By default, run at 00:57 on every Sunday")


def test_crontab_sets_path_and_mailto_from_logcheck(tmp_path):
    assert cronfile("import", "crontab", str(DATA / "etc/cron.d/logcheck"), "--tz", "UTC", cwd=tmp_path).returncode == 0
    reboot = yaml.safe_load((tmp_path / "jobs.d" / "logcheck.yaml").read_text())
    hourly = yaml.safe_load((tmp_path / "jobs.d" / "logcheck-2.yaml").read_text())
    assert reboot["schedule"] == "@reboot" and hourly["schedule"] == "2 * * * *"
    assert reboot["deliver"] == [{"email": "root"}]
    assert reboot["env"]["PATH"].startswith("/usr/local/sbin")


def test_imported_jobs_run_with_crons_stdin_shell_and_env(tmp_path):
    crontab = tmp_path / "my.crontab"
    crontab.write_text(
        "GREETING=hello from cron\n"
        "* * * * * tr a-z A-Z%first line%second \\% line\n"
        "* * * * * echo \"$GREETING\" 100\\%\n"
        "SHELL=/bin/bash\n"
        "* * * * * echo \"bash=${BASH_VERSION:+yes}\"\n"
        "* * * * * pwd\n"
    )
    home = tmp_path / "home"
    home.mkdir()
    res = cronfile("import", "crontab", str(crontab), "--tz", "UTC", cwd=tmp_path, env={"HOME": str(home)})
    assert res.returncode == 0, res.stderr
    names = sorted(p.stem for p in (tmp_path / "jobs.d").glob("*.yaml"))
    assert names == ["echo", "echo-2", "pwd", "tr-a-z"]
    outputs = {}
    for name in names:
        run = cronfile("run", name, cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        outputs[name] = run.stdout
    assert outputs["tr-a-z"] == "FIRST LINE\nSECOND % LINE\n"
    assert outputs["echo"] == "hello from cron 100%\n"
    assert outputs["echo-2"] == "bash=yes\n"
    assert outputs["pwd"] == f"{home}\n"


def test_unconvertible_lines_write_nothing_and_exit_2(tmp_path):
    crontab = tmp_path / "bad.crontab"
    crontab.write_text("0 1 * * * fine\n0 25 * * * bad-hour\n@weekly also-fine\n@fortnightly nope\n")
    res = cronfile("import", "crontab", str(crontab), cwd=tmp_path)
    assert res.returncode == 2
    assert f"{crontab}:2:1:" in res.stderr and f"{crontab}:4:1:" in res.stderr
    assert "nothing was changed" in res.stderr
    assert not (tmp_path / "jobs.d").exists()
    assert "Traceback" not in res.stderr


def test_stdin_and_out_dir_and_names_taken_in_the_repo(tmp_path):
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "other.yaml").write_text("name: backup-srv\nschedule: '@daily'\nshell: 'true'\n")
    res = cronfile("import", "crontab", "-", "--out", "jobs.d", "--tz", "UTC", cwd=tmp_path, input="0 3 * * * backup /srv\n")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "jobs.d" / "backup-srv-2.yaml").is_file()
    assert cronfile("validate", cwd=tmp_path).returncode == 0
    mode = stat.S_IMODE(os.stat(tmp_path / "jobs.d" / "backup-srv-2.yaml").st_mode)
    assert mode == 0o644


def test_without_a_file_it_reads_crontab_l(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # The crontab program itself (not installed on every host): prints a user crontab
    # for -l, as cron's crontab(1) does.
    tool = bin_dir / "crontab"
    tool.write_text('#!/bin/sh\n[ "$1" = -l ] || exit 2\nprintf "# Nightly dump\\n30 2 * * * pg_dump app\\n"\n')
    tool.chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path)}
    res = cronfile("import", "crontab", "--tz", "UTC", cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    job = yaml.safe_load((tmp_path / "jobs.d" / "pg-dump-app.yaml").read_text())
    assert job == {
        "description": "Nightly dump",
        "schedule": "30 2 * * *",
        "timezone": "UTC",
        "shell": f"cd {tmp_path} && pg_dump app",  # cron runs a command in the user's home
        "concurrency": "allow",
        "timeout": "1w",
    }
    tool.write_text("#!/bin/sh\necho 'no crontab for me' >&2\nexit 1\n")
    res = cronfile("import", "crontab", cwd=tmp_path / "bin", env=env)
    assert res.returncode == 2 and "no crontab for me" in res.stderr


def test_the_readme_example_is_what_import_writes(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Coming from crontab", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    steps = [s for s in block.split("$ ") if s]
    crontab = steps[0].split("\n", 1)[1]
    assert steps[1].startswith("crontab -l | cronfile import crontab - --tz Europe/Berlin\n")
    assert cronfile("init", "-q", ".", cwd=tmp_path).returncode == 0
    (tmp_path / "jobs.d" / "hello.yaml").unlink()
    res = cronfile("import", "crontab", "-", "--tz", "Europe/Berlin", cwd=tmp_path, input=crontab, env={"HOME": "/home/me"})
    assert res.returncode == 0, res.stderr
    assert res.stdout + res.stderr == steps[1].split("\n", 1)[1]
    for step in steps[2:]:
        command, shown = step.split("\n", 1)
        assert command.startswith("cat ")
        assert (tmp_path / command[4:]).read_text() == shown


def test_sysstats_example_user_crontab_keeps_its_two_live_entries(tmp_path):
    path = DATA / "usr/share/doc/sysstat/examples/crontab"
    res = cronfile("import", "crontab", str(path), "--tz", "UTC", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    made = json.loads(res.stdout)
    assert [(m["name"], m["line"]) for m in made] == [("sa1", 6), ("sa2", 16)]
    sa1 = yaml.safe_load((tmp_path / "jobs.d" / "sa1.yaml").read_text())
    sa2 = yaml.safe_load((tmp_path / "jobs.d" / "sa2.yaml").read_text())
    cd = f"cd {shlex.quote(os.path.expanduser('~'))} && "  # the importing user's home
    assert (sa1["schedule"], sa1["shell"]) == ("0 * * * *", cd + "/usr/lib/sysstat/sa1 600 6")
    assert sa1["description"] == "activity reports every 10 minutes everyday."
    assert "labels" not in sa1  # the user format has no user field
    # Just above sa2 is a commented-out entry, not a description.
    assert (sa2["schedule"], sa2["shell"]) == ("7 0 * * *", cd + "/usr/lib/sysstat/sa2 -A")
    assert "description" not in sa2


_PIECES = st.sampled_from(
    ["* ", "0 ", "*/5 ", "@daily ", "@reboot ", "root ", "%", "\\%", "'", '"', "&&", "|", ";", "$(", ")",
     "FOO=", "MAILTO=", "SHELL=/bin/bash\n", "#", "\n", " ", "-", ": ", "- ", "{", "!", "é", "\t", "x", "9"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES, max_size=30).map("".join), st.booleans())
def test_any_crontab_text_converts_or_is_listed_and_every_job_file_reads_back(tail, system):
    text = "* * * * * " + tail
    jobs, problems = convert(text, source="crontab", system=system, timezone="UTC")
    for p in problems:
        assert p.line >= 1 and p.message
    for job in jobs:
        assert is_job_name(job.name)
        docs, bad = load_documents(render_job(job, source="crontab", schema_ref=None), "f.yaml")
        spec, more = job_from_document(docs[0], Config(), default_name=job.name)
        assert not [p for p in bad + more if p.severity == "error"]
        assert spec is not None and docs[0].data == dict(job.data)
