#!/bin/sh
# Install the agent CLIs the profile tests drive (tests/agents) into a cached prefix.
# Idempotent: does nothing when the pinned versions are already there.
# The tests look for the binaries in "$CRONFILE_AGENT_CLIS/node_modules/.bin".
set -eu
PREFIX="${CRONFILE_AGENT_CLIS:-$HOME/.cache/cronfile/agent-clis}"
CODEX=0.171.0
CLAUDE=2.1.332
GEMINI=0.61.0
STAMP="$PREFIX/.installed-codex-$CODEX-claude-$CLAUDE-gemini-$GEMINI"
if [ -f "$STAMP" ]; then
  exit 0
fi
mkdir -p "$PREFIX"
npm install --no-audit --no-fund --loglevel=error --prefix "$PREFIX" \
  "@openai/codex@$CODEX" "@anthropic-ai/claude-code@$CLAUDE" "@google/gemini-cli@$GEMINI"
touch "$STAMP"
