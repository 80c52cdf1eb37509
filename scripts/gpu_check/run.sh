#!/usr/bin/env bash
# The GPU checks in one command (see run.py); pass --dry-run on a CPU machine to prove the bundle first.
set -u
cd "$(dirname "$0")/../.." || exit 1
exec "${PYTHON:-python3}" scripts/gpu_check/run.py "$@"
