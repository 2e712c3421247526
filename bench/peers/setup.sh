#!/usr/bin/env bash
# Make the venv MLServer runs in (bench/peers/requirements.txt): `bash bench/peers/setup.sh [VENV]`
# (default .venv-mlserver). Separate from the project's venv: MLServer 1.7.1 needs protobuf < 7.
set -euo pipefail
VENV=${1:-.venv-mlserver}
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
rm -f "$VENV/.installed"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet -r "$HERE/requirements.txt"
"$VENV/bin/python" -c "import mlserver, uvloop, google.protobuf as p; assert mlserver.__version__ == '1.7.1', mlserver.__version__; assert uvloop.__version__ == '0.21.0', uvloop.__version__; assert int(p.__version__.split('.')[0]) < 7, p.__version__"
touch "$VENV/.installed"
