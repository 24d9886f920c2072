#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment and install virtactor into it.
#   venv.sh DIR
set -euo pipefail
venv="${1:-.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "venv: creating $venv with $($python --version)"
    "$python" -m venv "$venv"
fi
echo "venv: installing virtactor[dev,tracing] into $venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e '.[dev,tracing]'
