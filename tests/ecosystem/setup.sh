#!/usr/bin/env bash
# Make the venv with the ecosystem's own clients (tritonclient, tensorflow-serving-api) that the
# protocol tests run as subprocesses. Usage: tests/ecosystem/setup.sh [VENV] (default .venv-ecosystem).
# Separate from the project's venv: tritonclient needs protobuf < 7 (the server pins 7), and
# tensorflow-serving-api would pull in a second TensorFlow distribution.
set -euo pipefail
VENV=${1:-.venv-ecosystem}
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
KSERVE=kserve==0.21.0

rm -f "$VENV/.installed"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet -r "$HERE/requirements.txt"
"$VENV/bin/pip" install --quiet --no-deps -r "$HERE/requirements-nodeps.txt"
# KServe's generated v2 messages, only as the reference for tests/server/test_protocols_wire.py:
# unpacked aside (not importable from the venv, no dependencies), never imported.
"$VENV/bin/pip" install --quiet --no-deps --upgrade --target "$VENV/reference" "$KSERVE"
"$VENV/bin/python" "$HERE/check_env.py"
touch "$VENV/.installed"
