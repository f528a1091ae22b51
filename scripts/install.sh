#!/usr/bin/env bash
# Installs airflowdsl with every framework extra into the current Python.
# Idempotent: a second run installs nothing new (pip finds everything satisfied,
# the Horovod wheel comes from its cache).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
if ! command -v dot >/dev/null 2>&1; then
    echo "[install] graphviz 'dot' missing: installing Debian's graphviz"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq graphviz >/dev/null
fi
# The UI's browser tests (tests/ui) drive Debian's chromium with pip's playwright (dev
# extra) pointed at the system executable: nothing downloads a browser (no
# `playwright install`). AIRFLOWDSL_CHROMIUM may name another executable.
if [ -z "${AIRFLOWDSL_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
    echo "[install] chromium missing: installing Debian's chromium (UI browser tests)"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi

PIP="python -m pip --disable-pip-version-check"
# -c constraints.txt pins torch to the CPU build (an unpinned torch pulls CUDA).
$PIP install -q -c constraints.txt -e ".[all,dev]"
# tf-keras: Keras 2 for TensorFlow's MultiWorkerMirroredStrategy (Keras 3's
# model.fit is broken there). --no-deps: its deps would pull the full
# tensorflow + CUDA NCCL beside tensorflow-cpu.
$PIP install -q --no-deps -c constraints.txt "tf-keras==2.21.0"
# Bytecode for airflowdsl's own modules (an editable install compiles nothing): where
# Python may not write it (PYTHONDONTWRITEBYTECODE=1, a read-only checkout) every process
# -- each run, each Ray worker -- would compile the package again (~0.15-0.2 s here).
# Python checks each file's bytecode against its source, so an edit is never missed.
python -m compileall -q airflowdsl
# Horovod 0.28.1 must be built against our torch with C++17 (cached wheel).
bash scripts/build_horovod.sh
echo "[install] done"
