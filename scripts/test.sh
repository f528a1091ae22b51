#!/usr/bin/env bash
# Lint, type-check, check the layer contracts (pyproject.toml) and test. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "[test] ruff"; python -m ruff check airflowdsl tests pipelines examples bench
echo "[test] mypy"; python -m mypy airflowdsl
echo "[test] import contracts"; lint-imports
echo "[test] pytest"; python -m pytest -q -p no:cacheprovider "$@"
# the multi-node tests start a ray.cluster_utils.Cluster: a pytest process of their own
# (tests/cluster/conftest.py); run with the full suite only, not with chosen tests
if [ "$#" -eq 0 ]; then
  echo "[test] pytest tests/cluster (multi-node Ray + moto S3)"
  AIRFLOWDSL_CLUSTER_TESTS=1 python -m pytest -q -p no:cacheprovider tests/cluster
fi
