"""The real agent CLIs, set up as a user would set them up against a local model API.

``tests/agents/install-clis.sh`` installs the npm CLIs (codex, claude, gemini) into a
cached folder; ``llm`` comes with the ``test`` extra. Each test gets its own HOME and
config folders, so nothing reads or writes the user's real ones, and an environment
that points the CLI at a :class:`stub_apis.ModelStub` on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

__all__ = ["CLIS", "INSTALL", "cli_bin", "cli_env"]

CLIS = ("codex", "claude", "gemini", "llm")
HERE = Path(__file__).resolve().parent
INSTALL = f"sh {HERE.relative_to(HERE.parents[1])}/install-clis.sh"
# The model each job names: gemini without -m first asks a routing model, llm needs one.
MODELS = {"codex": None, "claude": None, "gemini": "gemini-2.5-flash", "llm": "stub"}


def npm_prefix() -> Path:
    default = Path.home() / ".cache" / "cronfile" / "agent-clis"
    return Path(os.environ.get("CRONFILE_AGENT_CLIS") or default)


def cli_bin(name: str) -> Path:
    """The folder holding the program ``name``; fails (never skips) when it is missing."""
    if name == "llm":
        folder = Path(sys.executable).parent
        if not (folder / "llm").exists():
            raise AssertionError(
                "llm is not installed in this venv: pip install -e '.[test]' (it is a test extra)"
            )
        return folder
    folder = npm_prefix() / "node_modules" / ".bin"
    if not (folder / name).exists():
        raise AssertionError(
            f"{name} is not installed in {folder.parent.parent}: run `{INSTALL}` "
            "(CI does, from .ci/run)"
        )
    return folder


def cli_env(name: str, home: Path, stub_url: str) -> dict[str, str]:
    """The environment (and config files under ``home``) that make ``name`` talk to the
    stub at ``stub_url`` and to nothing else."""
    home.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join([str(cli_bin(name)), "/usr/local/bin", "/usr/bin", "/bin"])
    env = {"HOME": str(home), "PATH": path, "XDG_CONFIG_HOME": str(home / ".config")}
    # Keys of a real account must not leak into (or change) the test.
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        env[var] = ""
    if name == "codex":
        codex_home = home / ".codex"
        codex_home.mkdir(exist_ok=True)
        (codex_home / "config.toml").write_text(
            'model = "gpt-stub"\n'
            'model_provider = "stub"\n'
            "[model_providers.stub]\n"
            'name = "stub"\n'
            f'base_url = "{stub_url}/v1"\n'
            'wire_api = "responses"\n'
            'env_key = "STUB_API_KEY"\n'
        )
        env.update(CODEX_HOME=str(codex_home), STUB_API_KEY="stub-key")
    elif name == "claude":
        env.update(
            ANTHROPIC_BASE_URL=stub_url,
            ANTHROPIC_API_KEY="stub-key",
            CLAUDE_CONFIG_DIR=str(home / ".claude"),
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
            DISABLE_AUTOUPDATER="1",
        )
    elif name == "gemini":
        gem = home / ".gemini"
        gem.mkdir(exist_ok=True)
        settings = {
            "security": {"auth": {"selectedType": "gemini-api-key"}},
            # Nothing but the stub: no update check, no usage statistics.
            "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
            "privacy": {"usageStatisticsEnabled": False},
        }
        (gem / "settings.json").write_text(json.dumps(settings))
        env.update(GOOGLE_GEMINI_BASE_URL=stub_url, GEMINI_API_KEY="stub-key")
    elif name == "llm":
        user = home / "llm"
        user.mkdir(exist_ok=True)
        (user / "extra-openai-models.yaml").write_text(
            f'- model_id: stub\n  model_name: stub-model\n  api_base: "{stub_url}/v1"\n'
        )
        env.update(LLM_USER_PATH=str(user), OPENAI_API_KEY="stub-key")
    else:
        raise ValueError(name)
    return env
