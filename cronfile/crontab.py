"""`cronfile import crontab`: a crontab (user or system format) -> one job file per entry.

The reading is Debian (Vixie) cron's, so an imported job means what its line meant:

- Blank lines and lines whose first non-blank character is ``#`` are comments.
- ``NAME=value`` lines (spaces around ``=`` allowed, the value may be quoted) set the
  environment of the entries *below* them. ``SHELL`` is the shell the command runs
  under, ``MAILTO`` where output is mailed (``MAILTO=""``: nowhere), ``CRON_TZ`` (and
  ``TZ``, as cronie reads it) the timezone of the schedule; every other name is env.
- An entry is five time fields or a macro (``@reboot``, ``@daily``...), then, in the
  system format (``/etc/crontab``, ``/etc/cron.d/*``), a user name, then the command.
- ``%`` in the command: # Debian cron's do_command.c: the first unescaped ``%`` ends the
  command and the rest is its standard input, each further unescaped ``%`` a newline;
  ``\\%`` is a literal percent in both parts (and the backslash is dropped).

Pure: text in, jobs and problems out (``convert``); the command (``cmd_import``) is the
edge that reads the file or ``crontab -l`` and writes the job files, all or none.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .errors import Problem

if TYPE_CHECKING:
    import argparse

    from .console import Out

__all__ = ["ImportedJob", "convert", "derive_name", "is_system_path", "split_percent"]

MACROS = ("@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_ENV_RE = re.compile(r"""\A\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*|"[^"]*"|'[^']*')\s*=\s*(?P<value>.*)\Z""")
_DEFAULT_SHELLS = ("/bin/sh", "sh")
# cron never stops a job; cronfile's default timeout is 15m, which would kill a long backup.
NO_TIMEOUT = "1w"
STDIN_MARK = "CRONFILE_STDIN"
# Commands that guard or wrap the real one: skipped when a name is derived.
_GUARDS = frozenset({"[", "[[", "test", "true", "false", ":", "cd", "command", "which", "type", "exit", "sleep", "echo", "printf"})
_WRAPPERS = frozenset({"nice", "ionice", "nohup", "exec", "sudo", "env", "chronic", "flock", "timeout", "time", "setsid", "run-one"})
_KEYWORDS = frozenset({"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "!", "{", "}", "(", ")"})
_SEPARATORS = frozenset({"&&", "||", ";", "|", "&", ";;", "|&", "(", ")", "\n"})


@dataclass(frozen=True)
class ImportedJob:
    """One crontab entry as a job: its name, the document to write, and where it came from."""

    name: str
    data: Mapping[str, Any]
    line: int
    text: str  # the crontab line as written
    notes: tuple[str, ...] = ()


@dataclass
class _Env:
    """The environment lines seen so far (they apply to the entries below them)."""

    env: dict[str, str] = field(default_factory=dict)
    shell: str | None = None
    mailto: str | None = None
    tz: str | None = None


def is_system_path(path: str) -> bool:
    """/etc/crontab and files in a cron.d folder are in the system format (a user field)."""
    p = Path(path)
    return p.parent.name == "cron.d" or (p.name == "crontab" and p.parent.name == "etc")


_UNESCAPED_PERCENT = re.compile(r"(?<!\\)%")


def split_percent(command: str) -> tuple[str, str | None]:
    """(command, standard input or None), as Debian cron's do_command.c reads ``%``.

    >>> split_percent(r"mail -s hi root%line one%line two")
    ('mail -s hi root', 'line one\\nline two\\n')
    >>> split_percent(r"date +\\%d")
    ('date +%d', None)
    """
    # Every % not preceded by a backslash splits; `\%` is a literal % on both sides.
    cmd, *rest = _UNESCAPED_PERCENT.split(command)
    cmd = cmd.replace("\\%", "%")
    if not rest:
        return cmd, None
    text = "\n".join(part.replace("\\%", "%") for part in rest)
    if not text:
        return cmd, None  # cron writes nothing to the child's stdin
    if not text.endswith("\n"):
        text += "\n"  # cron adds the missing final newline
    return cmd, text


def with_stdin(command: str, data: str) -> str:
    """A shell script running ``command`` with ``data`` on its standard input (a quoted
    here-document: nothing in ``data`` is expanded)."""
    mark = STDIN_MARK
    lines = data.splitlines()
    n = 1
    while mark in lines:
        n += 1
        mark = f"{STDIN_MARK}_{n}"
    return "{\n" + command + "\n} <<'" + mark + "'\n" + data + mark + "\n"


def _words(command: str) -> list[str]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote: a plain split still gives a name
        return command.split()


def _slug(text: str) -> str:
    text = re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.")
    return re.sub(r"\.{2,}", ".", text)


def derive_name(command: str) -> str:
    """A readable job name from a command: its main program, and its first plain
    argument (a word, or the last part of a path), with guards such as ``test -x ... &&``
    and wrappers such as ``nice -n10`` skipped.

    >>> derive_name("test -x /usr/bin/certbot && certbot -q renew")
    'certbot-renew'
    >>> derive_name("cd / && run-parts --report /etc/cron.daily")
    'run-parts-cron.daily'
    """
    segments: list[list[str]] = [[]]
    # Redirections (`>> log 2>&1`) name no program: drop each with its target.
    words = _words(re.sub(r"\d*(?:>>|>|<)(?:&\d+|&-)?", " > ", command))
    skip = False
    for w in words:
        if skip or w == ">":
            skip = w == ">"
            continue
        if w in _SEPARATORS or all(c in ";&|()" for c in w):
            segments.append([])
        else:
            segments[-1].append(w)
    best: list[str] = []
    for seg in segments:
        words = [w for w in seg if w not in _KEYWORDS]
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            words = words[1:]  # VAR=value prefixes
        while words and os.path.basename(words[0]) in _WRAPPERS:
            words = words[1:]
            while words and (words[0].startswith("-") or words[0].isdigit()):
                words = words[1:]
        if not words or os.path.basename(words[0]) in _GUARDS or words[0].startswith(("$", ">", "<", "2>")):
            continue
        if os.path.basename(words[0]) in ("perl", "python", "python3", "sh", "bash") and "-e" in words[1:2] + words[1:3]:
            continue  # an inline one-liner (certbot's random sleep) is not what the job is
        best = words
    if not best:
        best = [w for w in _words(command) if w not in _KEYWORDS and w not in _SEPARATORS][:1] or ["job"]
    parts = [_slug(os.path.basename(best[0]))]
    for w in best[1:]:
        if w.startswith(("-", ">", "<", "$", "2>", "&")) or "=" in w:
            continue
        base = os.path.basename(w.rstrip("/"))
        if re.fullmatch(r"[A-Za-z][A-Za-z0-9._-]*", base):
            parts.append(_slug(base))
        break
    name = "-".join(p for p in parts if p)[:64].strip("-.")
    if not name or not name[0].isalnum():
        name = "job" + ("-" + name if name else "")
    return name[:64]


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while True:
        suffix = f"-{n}"
        candidate = name[: 64 - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
        n += 1


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _description(comments: list[str]) -> str | None:
    """The comment block just above an entry, minus what reads as a commented-out entry
    (and everything above one) or a line without a letter (rulers, diagrams)."""
    text: list[str] = []
    for c in comments:
        body = c.lstrip()[1:].strip()
        if _looks_like_entry(body):
            text = []
            continue
        if re.search(r"[A-Za-z]", body):
            text.append(body)
    return " ".join(text) or None


def _looks_like_entry(text: str) -> bool:
    fields = text.split()
    if fields and fields[0].startswith("@") and fields[0].lower() in MACROS:
        return True
    # Five time fields (digits, *, lists, ranges, steps; a bare word is prose) and more.
    return len(fields) >= 6 and all(f == "*" or (re.fullmatch(r"[0-9*/,\-A-Za-z]+", f) is not None and not f.isalpha()) for f in fields[:5])


def _split_fields(line: str, n: int) -> list[str] | None:
    """The first ``n`` blank-separated fields and the rest of the line (as cron reads it)."""
    parts: list[str] = []
    rest = line.lstrip(" \t")
    for _ in range(n):
        m = re.match(r"([^ \t]+)[ \t]*", rest)
        if m is None:
            return None
        parts.append(m.group(1))
        rest = rest[m.end() :]
    parts.append(rest)
    return parts


def convert(
    text: str,
    *,
    source: str,
    system: bool,
    timezone: str,
    taken: Iterable[str] = (),
    home: Callable[[str | None], str | None] = lambda user: None,
) -> tuple[list[ImportedJob], list[Problem]]:
    """The jobs of a crontab and the lines that cannot be converted (with their line
    numbers). ``timezone`` is the zone of entries with no ``CRON_TZ``/``TZ`` above them:
    cron reads schedules on the host's local clock. ``taken`` are names already used.
    ``home(user)`` is a user's home folder (None: the importing user), where cron runs
    the command unless a ``HOME=`` line says otherwise."""
    from . import schedule as sched

    used = set(taken)
    jobs: list[ImportedJob] = []
    problems: list[Problem] = []
    env = _Env()
    comments: list[str] = []
    bad_tz: tuple[int, str] | None = None

    def problem(lineno: int, message: str, column: int = 1) -> None:
        problems.append(Problem(source, lineno, column, "", message))

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r")
        stripped = line.strip()
        if not stripped:
            comments = []
            continue
        if stripped.startswith("#"):
            comments.append(stripped)
            continue
        above, comments = comments, []
        m = _ENV_RE.match(line)
        if m and not stripped.startswith("@"):
            name, value = _unquote(m.group("name")), _unquote(m.group("value"))
            if name == "SHELL":
                env.shell = value or None
            elif name == "MAILTO":
                env.mailto = value
            elif name in ("CRON_TZ", "TZ"):
                try:
                    sched.get_zone(value)
                    env.tz = value
                    bad_tz = None
                except sched.ScheduleError as e:
                    problem(lineno, f"{name}: {e}")
                    bad_tz = (lineno, value)
                if name == "TZ":
                    env.env[name] = value  # cron hands TZ to the job too
            else:
                if "${" in value:
                    problem(lineno, f"{name}: the value holds '${{', which cronfile would expand from its own environment (cron passes it as written)")
                env.env[name] = value
            continue

        # An entry. cronie's leading "-" (do not log the run) has no meaning here.
        body = line.lstrip(" \t")
        if body.startswith("-"):
            body = body[1:]
        if body.startswith("@"):
            parts = _split_fields(body, 2 if system else 1)
            if parts is None:
                problem(lineno, "a macro with no command")
                continue
            expr = parts[0]
            if expr.lower() not in MACROS:
                hint = ""
                if expr.lower() == "@every":
                    interval = parts[1].split(None, 1)[0] if parts[1].strip() else "5m"
                    hint = f"; for supercronic's @every write `schedule: every {interval}` by hand (cronfile's intervals count from the epoch, not from the start)"
                problem(lineno, f"unknown macro {expr!r} (cron knows {', '.join(MACROS)}){hint}")
                continue
            expr = expr.lower()
        else:
            parts = _split_fields(body, 6 if system else 5)
            if parts is None:
                problem(lineno, "not an entry: expected five time fields" + (", a user" if system else "") + " and a command")
                continue
            expr = " ".join(parts[:5])
            parts = parts[4:]
        user = parts[1] if system else None
        command = parts[-1]
        if not command.strip():
            problem(lineno, "no command" + (" (the system format has a user field before the command)" if system else ""))
            continue
        if bad_tz is not None:
            problem(lineno, f"timezone {bad_tz[1]!r} (line {bad_tz[0]}) is unknown")
            continue
        tz = env.tz or timezone
        try:
            schedule = sched.parse(expr, tz)
        except sched.ScheduleError as e:
            problem(lineno, f"schedule {expr!r}: {e}")
            continue
        if not schedule.at_boot:
            from datetime import UTC, datetime

            if schedule.next_after(datetime(2000, 1, 1, tzinfo=UTC)) is None:
                problem(lineno, f"schedule {expr!r} never fires")
                continue
        cmd, stdin = split_percent(command)
        if not cmd.strip():
            problem(lineno, "no command before the first % (what follows it is the command's input)")
            continue
        script = with_stdin(cmd, stdin) if stdin is not None else cmd
        # Debian cron: chdir(env_get("HOME", envp)) before the command, and no run when
        # that fails, so relative paths are relative to the user's home (or a HOME=
        # line). A job's workdir stays inside the jobs repo (docs/design.md section 12),
        # so the change of folder is the command's own first step.
        notes: list[str] = []
        workdir = env.env.get("HOME") or home(user)
        if workdir:
            script = f"cd {shlex.quote(workdir)} && {script}"
        elif user is not None:
            notes.append(f"no user {user} here: runs in the jobs repo root, not {user}'s home")
        name = _unique(derive_name(cmd), used)
        used.add(name)
        data: dict[str, Any] = {}
        desc = _description(above)
        if desc:
            data["description"] = desc
        data["schedule"] = expr
        data["timezone"] = tz
        if env.shell is None or env.shell in _DEFAULT_SHELLS:
            data["shell"] = script
        else:
            data["command"] = [env.shell, "-c", script]
        if env.env:
            data["env"] = dict(env.env)
        # Like cron: a run may start while the previous one is still going, and no run
        # is ever stopped for taking long.
        data["concurrency"] = "allow"
        data["timeout"] = NO_TIMEOUT
        if user is not None:
            data["labels"] = {"cron-user": user}
            notes.append(f"ran as {user}; runs as the engine's user now (kept as label cron-user)")
        if env.mailto:
            rcpt = [a.strip() for a in env.mailto.split(",") if a.strip()]
            data["deliver"] = [{"email": rcpt[0] if len(rcpt) == 1 else rcpt}]
        jobs.append(ImportedJob(name, data, lineno, line, tuple(notes)))
    return jobs, problems


# -- writing ---------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def render_job(job: ImportedJob, *, source: str, schema_ref: str | None) -> str:
    """The job file: a `$schema` comment, where it came from (the line as written), the job."""
    head = []
    if schema_ref:
        head.append(f"# yaml-language-server: $schema={schema_ref}")
    head.append(f"# Imported by `cronfile import crontab` from {source}, line {job.line}:")
    head.append("#   " + job.text.strip())
    body = yaml.dump(dict(job.data), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=10_000, default_flow_style=False)
    return "\n".join(head) + "\n" + body


def local_timezone(environ: Mapping[str, str] | None = None) -> str:
    """The host's IANA zone, the clock cron reads schedules on: $TZ, else the target of
    /etc/localtime, else /etc/timezone, else UTC."""
    from zoneinfo import ZoneInfo

    environ = os.environ if environ is None else environ
    candidates = [environ.get("TZ", "").lstrip(":")]
    try:
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    try:
        candidates.append(Path("/etc/timezone").read_text().strip())
    except OSError:
        pass
    for c in candidates:
        if c and not c.startswith("/"):
            try:
                ZoneInfo(c)
                return c
            except (ValueError, OSError, KeyError):
                continue
    return "UTC"


def home_folder(user: str | None) -> str | None:
    """The home folder of ``user`` on this host (None: of the user importing), or None
    if there is no such user."""
    if user is None:
        home = os.path.expanduser("~")
        return None if home == "~" else home
    import pwd

    try:
        return pwd.getpwnam(user).pw_dir
    except KeyError:
        return None


def _read_source(file: str | None) -> tuple[str, str]:
    """(text, name shown in messages) of FILE, of stdin for '-', or of `crontab -l`."""
    import subprocess
    import sys

    from .errors import UsageError

    if file == "-":
        return sys.stdin.read(), "<stdin>"
    if file is not None:
        try:
            return Path(file).read_text(encoding="utf-8", errors="surrogateescape"), file
        except OSError as e:
            raise UsageError(f"{file}: {e.strerror or e}") from None
    try:
        res = subprocess.run(["crontab", "-l"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise UsageError("`crontab -l` failed: no crontab program on PATH; give a FILE, or - for stdin") from None
    if res.returncode != 0:
        why = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"
        raise UsageError(f"`crontab -l` failed: {why}")
    return res.stdout, "crontab -l"


def cmd_import(args: argparse.Namespace, out: Out) -> int:
    from datetime import UTC, datetime

    from .console import EXIT_OK, root_of
    from .errors import SpecError, UsageError
    from .load import CONFIG_NAME, JOBS_DIR, SUFFIXES, display_path, load_project
    from .schedule import ScheduleError, get_zone
    from .spec import Config, job_from_document
    from .yamlsrc import load_documents

    text, source = _read_source(args.file)
    system = args.system if args.system is not None else (args.file not in (None, "-") and is_system_path(args.file))
    tz = args.tz or local_timezone()
    try:
        get_zone(tz)
    except ScheduleError as e:
        raise UsageError(f"--tz: {e}") from None
    # The way in: with no repo here or above, jobs.d/ is created here.
    root = root_of(args, required=False) if args.out is None else None
    out_dir = Path(args.out) if args.out is not None else root / JOBS_DIR  # type: ignore[operator]
    taken: set[str] = set()
    if out_dir.is_dir():
        taken |= {p.stem for p in out_dir.rglob("*") if p.suffix in SUFFIXES}
        base = out_dir.parent if out_dir.name == JOBS_DIR else out_dir
        if (base / CONFIG_NAME).exists() or out_dir.name == JOBS_DIR:
            taken |= {s.name for s in load_project(base, jobs_dir=out_dir, warnings=False).specs}
    jobs, problems = convert(text, source=source, system=system, timezone=tz, taken=taken, home=home_folder)
    if problems:
        raise SpecError(problems)
    if not jobs:
        raise UsageError(f"{source}: no entries to import")

    schema = _schema_ref(out_dir)
    now = datetime.now(UTC)
    files: list[tuple[Path, str]] = []
    invalid: list[Problem] = []
    for job in jobs:
        path = out_dir / f"{job.name}.yaml"
        body = render_job(job, source=source, schema_ref=schema)
        # What is written must load as the job it was made from (and nothing else);
        # what would not is one more line that cannot be converted.
        docs, bad = load_documents(body, str(path))
        spec, more = job_from_document(docs[0], Config(), default_name=job.name, now=now) if docs else (None, [])
        reasons = [p.message if not p.field else f"{p.field}: {p.message}" for p in bad + more if p.severity == "error"]
        if not reasons and (spec is None or docs[0].data != dict(job.data)):
            reasons = ["the job file would not read back as written"]
        if reasons:
            invalid.append(Problem(source, job.line, 1, "", "; ".join(reasons)))
        files.append((path, body))
    if invalid:
        raise SpecError(invalid)
    if any(p.exists() for p, _ in files):  # raced with another writer: refuse, write nothing
        raise UsageError(f"{out_dir}: a job file appeared while importing; run again")
    write_all(out_dir, files)
    if out.json:
        out.json_data([{"name": j.name, "path": str(p), "line": j.line, "notes": list(j.notes)} for j, (p, _) in zip(jobs, files, strict=True)])
        return EXIT_OK
    for job, (path, _) in zip(jobs, files, strict=True):
        out.data(f"{display_path(path)}  <- line {job.line}: {job.text.strip()[:60]}")
    users = sorted({str(j.data["labels"]["cron-user"]) for j in jobs if "labels" in j.data})
    if users:
        out.msg(f"note: cron ran these as {', '.join(users)}; cronfile runs them as the user of its engine (label cron-user)")
    for note in sorted({n for j in jobs for n in j.notes if not n.startswith("ran as ")}):
        out.msg(f"note: {note}")
    out.msg(f"imported {len(jobs)} job{'s' if len(jobs) != 1 else ''} from {source} (timezone {tz} where no CRON_TZ/TZ line says otherwise)")
    out.msg("next: cronfile validate && cronfile diff; then remove the entries from the crontab and cronfile apply")
    return EXIT_OK


def write_all(out_dir: Path, files: list[tuple[Path, str]]) -> None:
    """Every file or none: each is written to a hidden temp file first (the loader skips
    hidden files), then all are renamed into place; a failure removes what was placed."""
    import tempfile

    out_dir.mkdir(parents=True, exist_ok=True)
    temps: list[tuple[str, Path]] = []
    placed: list[Path] = []
    try:
        for path, body in files:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            temps.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
        for tmp, path in temps:
            os.replace(tmp, path)
            placed.append(path)
    except BaseException:
        for p in placed:
            p.unlink(missing_ok=True)
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
        raise


def _schema_ref(out_dir: Path) -> str | None:
    """A relative path from the job files to the repo's schema/job.schema.json, if any
    folder above them holds one (`cronfile init` writes it)."""
    d = out_dir.resolve()
    for base in (d, *d.parents):
        candidate = base / "schema" / "job.schema.json"
        if candidate.is_file():
            return os.path.relpath(candidate, d)
    return None
