#!/usr/bin/env bash
# The Feast peer's own virtual environment, bench/.feast-venv (git-ignored): Feast 0.67
# with its Redis online store, apart from the project's venv so neither pins the other.
# Run once; `python -m bench.serving` calls it when the venv is missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
venv="$root/bench/.feast-venv"
if [ ! -x "$venv/bin/feast" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'feast[redis]==0.67.*'
fi
"$venv/bin/feast" version
