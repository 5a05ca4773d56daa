#!/usr/bin/env bash
# Creates the virtualenv the Python SDK suite runs in (internal/tools/pysdk/.venv), with the pinned
# packages of requirements.txt from PyPI, unless it already holds exactly those.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
if [ -x "$venv/bin/python" ] && cmp -s "$here/requirements.txt" "$venv/requirements.txt"; then
  exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --disable-pip-version-check --no-input -q -r "$here/requirements.txt"
cp "$here/requirements.txt" "$venv/requirements.txt"
