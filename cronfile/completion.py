"""`cronfile completion bash|zsh|fish`: shell completion scripts.

Every command, option and choice comes from ``commands.build_parser()``, so a new option is
completed the day it is added. Job names come from the jobs repo at completion time:
the scripts call ``cronfile [-C DIR] completion --jobs``, which prints one name per
line and never fails (a completion must not print errors into the user's prompt).

What a value completes to is read off the parser too: a positional called ``name`` (or
a metavar naming one) is a job, a ``DIR`` metavar is a folder, ``PATH`` a file, and
``choices`` are offered as they are.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .console import Out

__all__ = ["SHELLS", "Command", "Opt", "Pos", "cmd_completion", "model", "print_jobs", "script"]

SHELLS = ("bash", "zsh", "fish")

# What a value completes to.
JOB, DIR, FILE, CHOICE, NONE = "job", "dir", "file", "choice", "none"


@dataclass(frozen=True)
class Opt:
    """An option: its spellings, whether it takes a value, and what the value is."""

    names: tuple[str, ...]
    help: str
    takes_value: bool
    kind: str = NONE
    choices: tuple[str, ...] = ()
    metavar: str = ""


@dataclass(frozen=True)
class Pos:
    """A positional argument; ``many`` when it repeats (nargs * or +)."""

    label: str
    kind: str
    choices: tuple[str, ...] = ()
    optional: bool = False
    many: bool = False


@dataclass(frozen=True)
class Command:
    name: str  # "" for the top level (no command yet)
    help: str
    options: tuple[Opt, ...]
    positionals: tuple[Pos, ...]

    @property
    def value_options(self) -> list[str]:
        return [n for o in self.options if o.takes_value for n in o.names]


def _kind(metavar: str, dest: str, choices: tuple[str, ...]) -> str:
    if choices:
        return CHOICE
    words = set(re.split(r"[^A-Za-z]+", f"{metavar} {dest}".upper()))
    if "NAME" in words:
        return JOB
    if "DIR" in words or "OUTPUT" in words:
        return DIR
    if "PATH" in words or "FILE" in words:
        return FILE
    return NONE


def _command(name: str, parser: argparse.ArgumentParser, help_: str) -> Command:
    opts: list[Opt] = []
    poss: list[Pos] = []
    for a in parser._actions:  # argparse has no public accessor for its actions
        if isinstance(a, argparse._SubParsersAction):
            continue
        choices = tuple(str(c) for c in a.choices) if a.choices else ()
        metavar = a.metavar if isinstance(a.metavar, str) else ""
        if a.option_strings:
            takes = a.nargs != 0
            kind = _kind(metavar, a.dest, choices) if takes else NONE
            # --name of `service` is a unit name, not a job: only positionals name jobs.
            if kind == JOB:
                kind = NONE
            meta = metavar or a.dest.upper()
            opts.append(
                Opt(
                    tuple(a.option_strings),
                    a.help or "",
                    takes,
                    kind,
                    choices,
                    meta if takes else "",
                )
            )
        else:
            poss.append(
                Pos(
                    label=metavar or a.dest,
                    kind=_kind(metavar, a.dest, choices),
                    choices=choices,
                    optional=a.nargs in ("?", "*"),
                    many=a.nargs in ("*", "+"),
                )
            )
    return Command(name, help_, tuple(opts), tuple(poss))


def model(parser: argparse.ArgumentParser | None = None) -> list[Command]:
    """The top level (name "") and then every command, in the parser's order."""
    from .commands import build_parser

    parser = parser or build_parser()
    out = [_command("", parser, parser.description or "")]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {c.dest: c.help or "" for c in action._choices_actions}
            for name, sub in action.choices.items():
                out.append(_command(name, sub, helps.get(name, "")))
    return out


# -- bash ----------------------------------------------------------------------------


def _bash_words(words: list[str] | tuple[str, ...]) -> str:
    return " ".join(words)


def _bash_value(kind: str, choices: tuple[str, ...]) -> str:
    """The bash statement that fills COMPREPLY for one value."""
    if kind == CHOICE:
        return f'COMPREPLY=($(compgen -W "{_bash_words(choices)}" -- "$cur"))'
    if kind == JOB:
        return '_cronfile_complete_jobs "$cur"'
    if kind == DIR:
        return '_cronfile_filenames; COMPREPLY=($(compgen -d -- "$cur"))'
    if kind == FILE:
        return '_cronfile_filenames; COMPREPLY=($(compgen -f -- "$cur"))'
    return ":"


def bash(commands: list[Command]) -> str:
    subs = commands[1:]
    value_cases = []
    for c in commands:
        value_cases.append(
            f'        "{c.name}") _cronfile_vals="{_bash_words(c.value_options)}" ;;'
        )
    option_cases = []
    for c in commands:
        names = [n for o in c.options for n in o.names]
        option_cases.append(f'        "{c.name}") opts="{_bash_words(names)}" ;;')
    # An option that every command shares (-C, --state-dir) gets one pattern for all.
    having: dict[Opt, list[str]] = {}
    for c in commands:
        for o in c.options:
            if o.takes_value and o.kind != NONE:
                having.setdefault(o, []).append(c.name)
    optvalue_cases = []
    for o, names in having.items():
        if len(names) == len(commands):
            pat = "|".join(f'*":{n}"' for n in o.names)
        else:
            pat = "|".join(f'"{c}:{n}"' for c in names for n in o.names)
        optvalue_cases.append(f"        {pat}) {_bash_value(o.kind, o.choices)} ;;")
    pos_cases = []
    for c in subs:
        branches = []
        for i, p in enumerate(c.positionals):
            test = f"npos >= {i}" if p.many else f"npos == {i}"
            branches.append(f"if (({test})); then {_bash_value(p.kind, p.choices)}")
        if branches:
            pos_cases.append(f"        {c.name}) " + "; el".join(branches) + "; fi ;;")
    return f"""\
# bash completion for cronfile, generated by `cronfile completion bash`.
# Load it for this shell:   eval "$(cronfile completion bash)"
# or for every shell:       cronfile completion bash > ~/.local/share/bash-completion/completions/cronfile
# Works with bash 3.2 (macOS) and later: no associative arrays.

# Job names from the jobs repo: `-C DIR` earlier on the line is honoured, and the very
# cronfile being completed is asked (a venv's copy may not be the one on PATH).
_cronfile_complete_jobs() {{
    local prog=${{COMP_WORDS[0]}} dir=. i
    case $prog in "~/"*) prog=$HOME/${{prog#"~/"}} ;; esac
    for ((i = 1; i < COMP_CWORD; i++)); do
        if [[ ${{COMP_WORDS[i]}} == -C ]]; then dir=${{COMP_WORDS[i+1]}}; fi
    done
    case $dir in "~/"*) dir=$HOME/${{dir#"~/"}} ;; esac
    COMPREPLY=($(compgen -W "$(command "$prog" -C "$dir" completion --jobs 2>/dev/null)" -- "$1"))
}}

_cronfile_filenames() {{
    # compopt is bash 4+; without it names still complete, only without the trailing /.
    type compopt >/dev/null 2>&1 && compopt -o filenames 2>/dev/null
}}

# The options that take a value, per command ("" = before the command).
_cronfile_value_opts() {{
    _cronfile_vals=
    case $1 in
{chr(10).join(value_cases)}
    esac
}}

_cronfile() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}}
    local cmd= npos=0 i w opts _cronfile_vals
    COMPREPLY=()
    # Walk the words before the cursor: the first one that is not an option (nor an
    # option's value) is the command; the ones after it are its positionals.
    _cronfile_value_opts ""
    # `--opt=value` arrives as three words (= is in COMP_WORDBREAKS).
    [[ $cur == = ]] && cur=
    local optname=
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${{COMP_WORDS[i]}}
        if [[ -n $optname ]]; then
            [[ $w == = ]] || optname=
            continue
        fi
        if [[ " $_cronfile_vals " == *" $w "* ]]; then optname=$w; continue; fi
        case $w in -*) continue ;; esac
        if [[ -z $cmd ]]; then
            cmd=$w
            _cronfile_value_opts "$cmd"
        else
            npos=$((npos + 1))
        fi
    done
    if [[ -n $optname ]]; then
        case "$cmd:$optname" in
{chr(10).join(optvalue_cases)}
        esac
        return 0
    fi
    if [[ $cur == -* ]]; then
        case $cmd in
{chr(10).join(option_cases)}
        esac
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return 0
    fi
    if [[ -z $cmd ]]; then
        COMPREPLY=($(compgen -W "{_bash_words([c.name for c in subs])}" -- "$cur"))
        return 0
    fi
    case $cmd in
{chr(10).join(pos_cases)}
    esac
    return 0
}}

complete -F _cronfile cronfile
"""


# -- zsh -----------------------------------------------------------------------------


def _zq(text: str) -> str:
    """Inside a single-quoted zsh word."""
    return text.replace("'", "'\\''")


def _zhelp(text: str) -> str:
    text = " ".join(text.split())
    return _zq(text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]"))


def _zaction(kind: str, choices: tuple[str, ...]) -> str:
    if kind == CHOICE:
        return "(" + " ".join(choices) + ")"
    return {JOB: "_cronfile_jobs", DIR: "_directories", FILE: "_files"}.get(kind, " ")


def _zsh_specs(c: Command) -> list[str]:
    specs = []
    for o in c.options:
        value = ""
        if o.takes_value:
            meta = o.metavar.lower().replace(":", "\\:") or "value"
            value = f":{meta}:{_zaction(o.kind, o.choices)}"
        excl = ""
        if o.names[-1] in ("--help", "--version"):
            excl = "(- *)"
        elif len(o.names) > 1:
            excl = "(" + " ".join(o.names) + ")"
        if len(o.names) > 1:
            specs.append(f"'{excl}'{{{','.join(o.names)}}}'[{_zhelp(o.help)}]{_zq(value)}'")
        else:
            specs.append(f"'{excl}{o.names[0]}[{_zhelp(o.help)}]{_zq(value)}'")
    for i, p in enumerate(c.positionals, 1):
        head = "*" if p.many else str(i)
        colon = "::" if p.optional and not p.many else ":"
        specs.append(f"'{head}{colon}{_zq(p.label.lower())}:{_zq(_zaction(p.kind, p.choices))}'")
    return specs


def zsh(commands: list[Command]) -> str:
    top, subs = commands[0], commands[1:]
    described = "\n".join(f"    '{_zq(c.name)}:{_zhelp(c.help)}'" for c in subs)
    top_specs = " \\\n    ".join([*_zsh_specs(top), "'1: :->command'", "'*:: :->args'"])
    cases = []
    for c in subs:
        specs = " \\\n        ".join(_zsh_specs(c))
        cases.append(f"    {c.name})\n      _arguments -s \\\n        {specs} && ret=0\n      ;;")
    return f"""\
#compdef cronfile
# zsh completion for cronfile, generated by `cronfile completion zsh`.
# Load it for this shell (after compinit):  eval "$(cronfile completion zsh)"
# or for every shell: cronfile completion zsh > "${{fpath[1]}}/_cronfile"

# Job names from the jobs repo at -C (saved by _cronfile before the words shift).
_cronfile_jobs() {{
  local -a jobs
  local dir=${{opt_args[-C]:-${{_cronfile_root:-.}}}}
  jobs=(${{(f)"$(command ${{_cronfile_prog:-cronfile}} -C ${{dir/#\\~/$HOME}} completion --jobs 2>/dev/null)"}})
  _describe -t jobs 'job' jobs
}}

_cronfile() {{
  local curcontext=$curcontext state line ret=1
  local _cronfile_prog=${{words[1]/#\\~/$HOME}} _cronfile_root
  typeset -A opt_args
  local -a commands
  commands=(
{described}
  )
  _arguments -C -s \\
    {top_specs} && ret=0
  _cronfile_root=${{opt_args[-C]:-.}}
  case $state in
  command)
    _describe -t commands 'cronfile command' commands && ret=0
    ;;
  args)
    curcontext=${{curcontext%:*:*}}:cronfile-$words[1]:
    case $words[1] in
{chr(10).join(cases)}
    esac
    ;;
  esac
  return ret
}}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _cronfile "$@"
else
  compdef _cronfile cronfile
fi
"""


# -- fish ----------------------------------------------------------------------------


def _fq(text: str) -> str:
    """A single-quoted fish string."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_value(kind: str, choices: tuple[str, ...]) -> str:
    if kind == CHOICE:
        return "-x -a " + _fq(" ".join(choices))
    if kind == JOB:
        return "-x -a '(__cronfile_jobs)'"
    if kind == DIR:
        return "-x -a '(__fish_complete_directories (commandline -ct))'"
    if kind == FILE:
        return "-r -F"
    return "-x"


def fish(commands: list[Command]) -> str:
    subs = commands[1:]
    value_cases = "\n".join(
        f"        case {_fq(c.name or '-')}\n            printf '%s\\n' {' '.join(c.value_options)}".rstrip()
        for c in commands
    )
    lines = []
    for c in subs:
        lines.append(
            f"complete -c cronfile -n '__cronfile_at - 0' -a {c.name} -d {_fq(' '.join(c.help.split()))}"
        )
    for c in commands:
        where = c.name or "-"
        for o in c.options:
            spell = []
            for n in o.names:
                spell.append(
                    f"-l {n[2:]}"
                    if n.startswith("--")
                    else (f"-s {n[1:]}" if len(n) == 2 else f"-o {n[1:]}")
                )
            value = _fish_value(o.kind, o.choices) if o.takes_value else ""
            lines.append(
                f"complete -c cronfile -n '__cronfile_in {where}' {' '.join(spell)} {value} -d {_fq(' '.join(o.help.split()))}".replace(
                    "  ", " "
                )
            )
        for i, p in enumerate(c.positionals):
            if p.kind == NONE:
                continue
            at = f"{i}+" if p.many else str(i)
            lines.append(
                f"complete -c cronfile -n '__cronfile_at {where} {at}' {_fish_value(p.kind, p.choices)}"
            )
    body = "\n".join(lines)
    return f"""\
# fish completion for cronfile, generated by `cronfile completion fish`.
# Install: cronfile completion fish > ~/.config/fish/completions/cronfile.fish

# The options that take a value, per command ("-" = before the command).
function __cronfile_value_opts
    switch $argv[1]
{value_cases}
    end
end

# Prints the command ("-" if none yet) and how many positionals follow it.
function __cronfile_state
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l cmd -
    set -l npos 0
    set -l skip 0
    for t in $tokens
        if test $skip = 1
            set skip 0
            continue
        end
        if contains -- $t (__cronfile_value_opts $cmd)
            set skip 1
            continue
        end
        if string match -q -- '-*' $t
            continue
        end
        if test $cmd = -
            set cmd $t
        else
            set npos (math $npos + 1)
        end
    end
    echo $cmd
    echo $npos
end

# True when the cursor is at positional N of command CMD ("N+" for N or later).
function __cronfile_at --argument-names want pos
    set -l s (__cronfile_state)
    test "$s[1]" = "$want"; or return 1
    if string match -q -- '*+' $pos
        test $s[2] -ge (string trim -r -c + -- $pos)
    else
        test $s[2] -eq $pos
    end
end

function __cronfile_in --argument-names want
    set -l s (__cronfile_state)
    test "$s[1]" = "$want"
end

# Job names from the jobs repo at -C, asked of the cronfile being completed.
function __cronfile_jobs
    set -l tokens (commandline -opc)
    set -l dir .
    for i in (seq 2 (count $tokens))
        if test "$tokens[$i]" = -C; and test $i -lt (count $tokens)
            set dir $tokens[(math $i + 1)]
        end
    end
    set -l prog (string replace -r '^~' $HOME -- $tokens[1])
    command $prog -C (string replace -r '^~' $HOME -- $dir) completion --jobs 2>/dev/null
end

complete -c cronfile -f
{body}
"""


def script(shell: str, commands: list[Command] | None = None) -> str:
    """The completion script for ``shell`` (bash, zsh or fish)."""
    commands = commands or model()
    return {"bash": bash, "zsh": zsh, "fish": fish}[shell](commands)


def print_jobs(args: argparse.Namespace) -> None:
    """One job name per line, from the files; nothing at all on any error."""
    import sys
    from pathlib import Path

    try:
        from .load import JOBS_DIR, load_project

        root = Path(args.C).expanduser()
        if not (root / JOBS_DIR).is_dir():
            return
        names = [s.name for s in load_project(root).specs]
    except Exception:  # noqa: BLE001 - a completion never shows a traceback in a prompt
        return
    sys.stdout.write("".join(n + "\n" for n in names))


def cmd_completion(args: argparse.Namespace, out: Out) -> int:
    from .errors import UsageError

    if args.jobs:
        print_jobs(args)
        return 0
    if not args.shell:
        raise UsageError(
            'name a shell: cronfile completion bash|zsh|fish (e.g. eval "$(cronfile completion bash)")'
        )
    out.data(script(args.shell))
    return 0
