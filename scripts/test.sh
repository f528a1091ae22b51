#!/usr/bin/env bash
# Lint, type-check, check the layer contracts (pyproject.toml) and test. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "[test] ruff"; python -m ruff check airflowdsl tests pipelines examples bench
echo "[test] mypy"; python -m mypy airflowdsl
echo "[test] import contracts"; lint-imports
echo "[test] pytest"; python -m pytest -q -p no:cacheprovider "$@"
