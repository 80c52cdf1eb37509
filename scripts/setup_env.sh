#!/usr/bin/env bash
# Create (or reuse) the project's virtualenv in .venv and install the package with its test extras.
# Idempotent: reinstalls only when pyproject.toml changed since the last successful install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${MASTSAM_VENV:-.venv}"
PYTHON_BIN="${PYTHON:-}"
if [ -z "$PYTHON_BIN" ]; then
  if command -v python3.11 >/dev/null 2>&1; then PYTHON_BIN=python3.11; else PYTHON_BIN=python3; fi
fi
if ! "$PYTHON_BIN" -c 'import sys; sys.exit(0 if sys.version_info[:2] in ((3, 11), (3, 12)) else 1)'; then
  echo "mastsam-splat needs Python 3.11 or 3.12 (found: $("$PYTHON_BIN" --version 2>&1)). Set PYTHON=/path/to/python3.11." >&2
  exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtualenv $VENV"
  "$PYTHON_BIN" -m venv "$VENV"
fi

STAMP="$VENV/.mastsam-install-stamp"
WANT="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "[setup] installing mastsam-splat and its dependencies into $VENV (first time: a few minutes)"
  "$VENV/bin/python" -m pip install --quiet --no-cache-dir --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --no-cache-dir -e '.[dev]'
  echo "$WANT" > "$STAMP"
else
  echo "[setup] environment $VENV is up to date"
fi
