#!/usr/bin/env bash
# Set up the environment (if needed), check the import layers and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
# Imports must follow the layers of docs/architecture.md (contracts in pyproject.toml).
.venv/bin/lint-imports
exec .venv/bin/python -m pytest -q "$@"
