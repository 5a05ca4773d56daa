#!/usr/bin/env bash
# Creates the virtualenv a Python suite runs in (DIR/.venv), with the pinned packages of
# DIR/requirements.txt from PyPI, unless it already holds exactly those. DIR defaults to this
# script's directory (the Python SDK suite); internal/tools/apifuzz is the other.
set -euo pipefail
here="$(cd "${1:-$(dirname "$0")}" && pwd)"
venv="$here/.venv"
if [ -x "$venv/bin/python" ] && cmp -s "$here/requirements.txt" "$venv/requirements.txt"; then
  exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --disable-pip-version-check --no-input -q -r "$here/requirements.txt"
cp "$here/requirements.txt" "$venv/requirements.txt"
