"""The commands and their arguments: the one argument parser, which the CLI dispatches
on and the completion scripts are generated from. Names and help only: the functions
that run the commands are cli.py's (``HANDLERS``).
"""

from __future__ import annotations

import argparse

from . import __version__

EPILOG = """\
examples:
  cronfile init                 scaffold cronfile.yaml and jobs.d/ here
  cronfile validate             check every file in jobs.d/
  cronfile next "0 9 * * 1-5" --tz Europe/Berlin -n 3
  cronfile diff                 what `apply` would change (exit 1 if anything)
  cronfile apply                record the files into the state
  cronfile diff --out plan.json  save the plan; `apply --plan plan.json` applies exactly it
  cronfile import crontab -     turn `crontab -l` output into job files
  cronfile daemon               run the engine until stopped
  cronfile run backup           run one job now, in the foreground
  cronfile status               every job, its next run and recent outcomes

exit codes: 0 ok, 1 a job failed or diff found changes, 2 invalid input or usage.
docs: README.md; the job format: `cronfile schema job`.
"""

# The commands whose output is data and that have a --json form; any other refuses it.
JSON_COMMANDS = frozenset({"validate", "next", "schema", "diff", "apply", "status", "pause", "resume", "history", "doctor", "import", "render"})
# The commands that never read the state: --state-dir given to them is refused.
STATELESS_COMMANDS = frozenset({"validate", "schema", "init", "completion", "render"})

# Each command: its one-line help and its example.
COMMANDS = {
    "validate": ("check job files and cronfile.yaml", "cronfile validate\n  cronfile validate jobs.d/backup.yaml examples/ops"),
    "next": ("upcoming fire times of an expression or a job", 'cronfile next "0 2 * * *" --tz Europe/Berlin -n 5\n  cronfile next daily-briefing --json'),
    "schema": ("print the JSON schema of a job or of cronfile.yaml", "cronfile schema job > job.schema.json"),
    "init": ("scaffold cronfile.yaml and jobs.d/ in a folder", "cronfile init my-jobs"),
    "diff": ("show what apply would change (exit 1 if anything)", "cronfile diff\n  cronfile diff --out plan.json   # review it, then: cronfile apply --plan plan.json"),
    "apply": ("record the job files into the state", "cronfile apply\n  cronfile apply --dry-run\n  cronfile apply --plan plan.json"),
    "status": ("every job: state, next run, recent outcomes", "cronfile status\n  cronfile status --json"),
    "pause": ("pause an applied job at runtime (kept until resume)", 'cronfile pause backup --reason "disk full, investigating"'),
    "resume": ("end a runtime pause; the next run is computed from now", "cronfile resume backup"),
    "history": ("past runs of a job", "cronfile history backup -n 20"),
    "logs": ("the output of a run (latest by default)", "cronfile logs backup\n  cronfile logs backup 7f3a\n  cronfile logs backup -f"),
    "run": ("run one job now in the foreground (trigger: manual)", "cronfile run backup"),
    "tick": ("one pass: recover, apply, fire what is due, wait, exit", "* * * * * cd /srv/jobs && cronfile tick   # from crontab"),
    "daemon": ("the engine: apply, watch, fire, execute, deliver", "cronfile daemon\n  cronfile -C /srv/jobs daemon --http 9100 --log-format json"),
    "doctor": ("check config, files, agents, timezone data, state dir, locks, clock", "cronfile doctor\n  cronfile doctor --json"),
    "service": ("install a systemd user unit / launchd agent that runs the daemon", "cronfile service print\n  cronfile service install\n  sudo cronfile service install --system --run-as cron\n  cronfile service uninstall"),
    "completion": ("print a shell completion script (bash, zsh, fish)", 'eval "$(cronfile completion bash)"\n  cronfile completion fish > ~/.config/fish/completions/cronfile.fish'),
    "mcp": ("serve the jobs to an agent over the Model Context Protocol (stdio; extra cronfile[mcp])", "cronfile -C /srv/jobs mcp   # started by the agent CLI, see README"),
    "import": ("turn a crontab (user or system format) into job files", "crontab -l | cronfile import crontab -\n  cronfile import crontab /etc/cron.d/certbot --out jobs.d"),
    "state": ("copy the state into another store (a database, or back to a state dir)", "cronfile state migrate --to 'postgresql://cronfile:${PGPASSWORD}@db/cronfile'\n  cronfile --state-url postgresql://db/cronfile state migrate --to .cronfile"),
    "render": ("render the jobs onto another scheduler (kubernetes)", "cronfile render kubernetes -o deploy/k8s --namespace jobs --image ghcr.io/acme/cronfile:1.0\n  cronfile render kubernetes -o - | kubectl apply -f -"),
}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-C", metavar="DIR", default=argparse.SUPPRESS, help="jobs repo root (default: . or the nearest folder above it with jobs.d/ or cronfile.yaml)")
    common.add_argument("--state-dir", metavar="DIR", default=argparse.SUPPRESS, help="state directory (default .cronfile; env CRONFILE_STATE_DIR)")
    common.add_argument("--state-url", metavar="URL", default=argparse.SUPPRESS, help="a shared state: postgresql://user:${PASSWORD}@host/db (env CRONFILE_STATE_URL; config state_url)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output where output is data")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="print only data and errors")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of internal errors")

    parser = argparse.ArgumentParser(
        prog="cronfile",
        description="A declarative cron runner for AI-agent jobs and shell jobs: jobs are YAML files in jobs.d/.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"cronfile {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_, example) in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=help_,
            description=help_[0].upper() + help_[1:] + ".",
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[common],
        )
        if name == "validate":
            p.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (default: jobs.d)")
        elif name == "next":
            p.add_argument("expr", metavar="EXPR_OR_NAME", help="a schedule expression or a job name")
            p.add_argument("-n", type=int, default=5, help="how many (default 5)")
            p.add_argument("--tz", help="timezone for an expression (default UTC)")
            p.add_argument("--after", metavar="ISO", help="start from this time instead of now")
        elif name == "schema":
            p.add_argument("which", nargs="?", choices=["job", "config"], default="job")
        elif name == "init":
            p.add_argument("dir", nargs="?", default=".", metavar="DIR")
        elif name == "apply":
            p.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
            p.add_argument("--plan", metavar="PLAN", help="apply exactly this saved plan (from diff --out), or exit 2 if the files or the state moved")
        elif name == "diff":
            p.add_argument("--out", metavar="PLAN", help="also save the plan, with digests of the files and state it was computed from")
        elif name == "history":
            p.add_argument("name", metavar="NAME")
            p.add_argument("-n", type=int, default=20, help="how many runs (default 20)")
        elif name == "logs":
            p.add_argument("name", metavar="NAME")
            p.add_argument("run_id", nargs="?", metavar="RUN_ID", help="a run id or its last characters")
            p.add_argument("-f", "--follow", action="store_true", help="follow a run in flight")
        elif name == "run":
            p.add_argument("name", metavar="NAME")
        elif name == "pause":
            p.add_argument("name", metavar="NAME")
            p.add_argument("--reason", metavar="TEXT", help="why (kept in the state and the audit log)")
        elif name == "resume":
            p.add_argument("name", metavar="NAME")
        elif name == "daemon":
            p.add_argument("--http", metavar="HOST:PORT", help="serve /metrics, /healthz and a status page at / (a bare PORT: 127.0.0.1; config: http)")
            p.add_argument("--log-format", choices=["text", "json"], help="log lines as dated text (default) or one JSON object each (config: log_format)")
        elif name == "service":
            p.add_argument("action", choices=["install", "uninstall", "print"])
            p.add_argument("--name", help="unit name (default: cronfile-<folder>)")
            p.add_argument("--system", action="store_true", help="a system unit in /etc/systemd/system (Type=notify, hardened; needs root to install)")
            p.add_argument("--run-as", metavar="USER", help="--system: the user the daemon runs as (default: the repo's owner)")
            p.add_argument("--http", metavar="HOST:PORT", help="the daemon serves /metrics, /healthz and the status page there")
        elif name == "completion":
            p.add_argument("shell", nargs="?", choices=["bash", "zsh", "fish"])
            p.add_argument("--jobs", action="store_true", help="print the job names (used by the scripts)")
        elif name == "import":
            p.add_argument("kind", choices=["crontab"])
            p.add_argument("file", nargs="?", metavar="FILE|-", help="a crontab file, or - for stdin (default: `crontab -l`)")
            p.add_argument("--out", metavar="DIR", help="where the job files go (default: jobs.d)")
            p.add_argument("--tz", metavar="TZ", help="timezone of entries with no CRON_TZ line above them (default: this host's)")
            fmt = p.add_mutually_exclusive_group()
            fmt.add_argument("--system", action="store_true", default=None, help="system format, with a user field (default for /etc/crontab and cron.d files)")
            fmt.add_argument("--user", dest="system", action="store_false", help="user format, no user field")
        elif name == "state":
            p.add_argument("action", choices=["migrate"])
            p.add_argument("--to", required=True, metavar="URL|DIR", help="an empty store: postgresql://..., file:///path or a folder")
        elif name == "render":
            p.add_argument("target", choices=["kubernetes"])
            p.add_argument("-o", "--output", metavar="DIR", help="output folder (default: deploy/kubernetes), or - to print the manifests as one YAML stream")
            p.add_argument("--namespace", metavar="NS")
            p.add_argument("--image", metavar="IMAGE")
            p.add_argument("--skip-unsupported", action="store_true", help="render the other jobs and list the ones skipped (default: refuse, exit 2)")
    return parser
