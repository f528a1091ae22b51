#!/usr/bin/env bash
# Builds (once) and installs Horovod 0.28.1 for the torch in the current Python.
#
# Horovod's last release does not build against torch >= 2.x's headers as
# published: it compiles with C++14 and torch needs C++17. We build it from the
# PyPI sdist (sha256-pinned) with CMAKE_CXX_STANDARD raised 14 -> 17 in
# CMakeLists.txt and horovod/torch/CMakeLists.txt (no other change), PyTorch +
# Gloo only (no MPI, TensorFlow, MXNet), strip the debug info from its shared
# libraries (wheel 18 MB -> 1.1 MB) and cache the wheel keyed by horovod version,
# torch version, python tag and machine, because the extension is tied to the
# exact torch it was compiled against (horovod records it in
# horovod/metadata.json and warns on a mismatch).
#
# Order: 1) already installed for this torch -> exit 0;
#        2) cached wheel for this key -> pip install --no-deps;
#        3) build (~4 min on 2 idle cores, ~10 CPU-min), cache atomically, install.
#
# Environment:
#   PYTHON                        interpreter to install into (default: python)
#   AIRFLOWDSL_WHEEL_CACHE        cache dir (default: ~/.cache/airflowdsl/wheels)
#   AIRFLOWDSL_HOROVOD_REBUILD=1  ignore installed package and cache; rebuild
#   HOROVOD_BUILD_JOBS            parallel compile jobs (default: nproc)
#   HOROVOD_BUILD_VERBOSE=1       stream the compiler output instead of logging it
set -euo pipefail

HVD_VERSION="0.28.1"
HVD_SDIST="horovod-${HVD_VERSION}.tar.gz"
HVD_SDIST_SHA256="92a43f5a94c43907a56805bad15f19700c62ffc83b7ca483f9e104e229f67ef0"
# Horovod's runtime requirements (setup.py install_requires, minus torch).
HVD_RUNTIME_DEPS=(cloudpickle psutil pyyaml packaging)

PY="${PYTHON:-python}"
PIP=("$PY" -m pip --disable-pip-version-check)
REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CONSTRAINTS=()
if [ -f "$REPO_ROOT/constraints.txt" ]; then
    CONSTRAINTS=(-c "$REPO_ROOT/constraints.txt")
fi
CACHE_ROOT="${AIRFLOWDSL_WHEEL_CACHE:-$HOME/.cache/airflowdsl/wheels}"
REBUILD="${AIRFLOWDSL_HOROVOD_REBUILD:-0}"

log() { echo "[horovod] $*"; }
die() { echo "[horovod] ERROR: $*" >&2; exit 1; }

TMP_DIR=""
cleanup() {
    if [ -n "$TMP_DIR" ] && [ -d "$TMP_DIR" ]; then rm -rf "$TMP_DIR"; fi
}
trap cleanup EXIT

# --- probe: torch version, python tag, installed horovod, runtime deps ---------
# One interpreter start (importing torch dominates the no-op run's time).
# Prints "<torch version> <python tag> <deps ok|missing> <horovod status...>";
# the horovod status is "ok" only when horovod.torch imports, is HVD_VERSION, was
# built with Gloo, and its horovod/metadata.json records exactly torch.__version__.
probe() {
    "$PY" - "$HVD_VERSION" <<'EOF' 2>/dev/null
import json, os, sys, warnings
want = sys.argv[1]
warnings.simplefilter("ignore")
try:
    import torch
except Exception:
    sys.exit(2)
out = [torch.__version__, "cp%d%d" % sys.version_info[:2]]
try:
    import cloudpickle, psutil, yaml, packaging  # noqa: F401  horovod's runtime deps
    out.append("ok")
except Exception:
    out.append("missing")
try:
    import horovod
    import horovod.torch as hvd
    with open(os.path.join(os.path.dirname(horovod.__file__), "metadata.json")) as f:
        built_against = json.load(f).get("pytorch")
    if horovod.__version__ != want:
        status = f"horovod {horovod.__version__} installed, want {want}"
    elif built_against != torch.__version__:
        status = f"installed horovod was built for torch {built_against}"
    elif not hvd.gloo_built():
        status = "installed horovod lacks Gloo"
    else:
        status = "ok"
except Exception as e:
    status = "horovod.torch not importable (" + (str(e).splitlines() or [type(e).__name__])[0][:120] + ")"
out.append(status)
print(" ".join(out))
EOF
}

PROBE="$(probe)" || die "torch is not importable with $PY; install torch first (pip install -c constraints.txt torch)"
read -r TORCH_VERSION PY_TAG DEPS HVD_STATUS <<<"$PROBE"
ARCH="$(uname -m)"

# --- runtime deps (small, pure pip) -------------------------------------------
ensure_runtime_deps() {
    if [ "$DEPS" != ok ]; then
        log "installing runtime deps: ${HVD_RUNTIME_DEPS[*]}"
        "${PIP[@]}" install -q "${CONSTRAINTS[@]}" "${HVD_RUNTIME_DEPS[@]}"
        DEPS=ok
    fi
}

# --- 1) already installed for this torch? ------------------------------------
if [ "$REBUILD" != 1 ] && [ "$HVD_STATUS" = ok ]; then
    ensure_runtime_deps
    log "horovod ${HVD_VERSION} already installed for torch ${TORCH_VERSION}; nothing to do"
    exit 0
fi
if [ "$REBUILD" = 1 ]; then
    log "AIRFLOWDSL_HOROVOD_REBUILD=1: ignoring the installed horovod and the cache"
else
    log "${HVD_STATUS}"
fi

# --- 2) cached wheel? --------------------------------------------------------
KEY_DIR="$CACHE_ROOT/horovod-${HVD_VERSION}/torch-${TORCH_VERSION}-${PY_TAG}-${ARCH}"
mkdir -p "$KEY_DIR"

# One build at a time per key (a concurrent install waits, then hits the cache).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$KEY_DIR/.lock"
    if ! flock -n 9; then
        log "another process is building for this key; waiting for it"
        flock 9
    fi
fi

find_cached() {
    local f
    for f in "$KEY_DIR"/horovod-"${HVD_VERSION}"-"${PY_TAG}"-*.whl; do
        if [ -f "$f" ]; then echo "$f"; return 0; fi
    done
    return 1
}

install_wheel() {
    ensure_runtime_deps
    log "installing $(basename "$1")"
    "${PIP[@]}" install -q --no-deps --force-reinstall "$1"
    local out status
    out="$(probe)" || die "torch stopped importing after installing $(basename "$1")"
    read -r _ _ _ status <<<"$out"
    [ "$status" = ok ] || die "installed $(basename "$1") but it is not usable: $status"
    log "horovod ${HVD_VERSION} ready for torch ${TORCH_VERSION}"
}

if [ "$REBUILD" != 1 ] && CACHED="$(find_cached)"; then
    log "cache hit: $CACHED"
    install_wheel "$CACHED"
    exit 0
fi

# --- 3) build ----------------------------------------------------------------
command -v cmake >/dev/null 2>&1 || die "cmake (>= 3.13) not found; apt-get install cmake"
command -v strip >/dev/null 2>&1 || die "strip not found; apt-get install binutils"
command -v "${CXX:-g++}" >/dev/null 2>&1 || die "C++ compiler ${CXX:-g++} not found; apt-get install g++"

if ! "$PY" -c 'import packaging, setuptools, wheel' >/dev/null 2>&1; then
    log "installing build deps: packaging setuptools wheel"
    "${PIP[@]}" install -q "${CONSTRAINTS[@]}" packaging setuptools wheel
fi

TMP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/airflowdsl-horovod.XXXXXX")"
START=$SECONDS

# The sdist is cached too (hash-checked), so a rebuild for a new torch works offline.
SDIST_DIR="$CACHE_ROOT/horovod-${HVD_VERSION}/sdist"
mkdir -p "$SDIST_DIR"
sdist_ok() { [ -f "$SDIST_DIR/$HVD_SDIST" ] && echo "$HVD_SDIST_SHA256  $SDIST_DIR/$HVD_SDIST" | sha256sum -c --status -; }
if ! sdist_ok; then
    log "downloading ${HVD_SDIST} from PyPI"
    echo "horovod==${HVD_VERSION} --hash=sha256:${HVD_SDIST_SHA256}" > "$TMP_DIR/req.txt"
    "${PIP[@]}" download -q --no-deps --no-binary :all: --require-hashes \
        -r "$TMP_DIR/req.txt" -d "$TMP_DIR/dl"
    [ -f "$TMP_DIR/dl/$HVD_SDIST" ] || die "pip download did not produce $HVD_SDIST"
    mv -f "$TMP_DIR/dl/$HVD_SDIST" "$SDIST_DIR/.$HVD_SDIST.$$"
    mv -f "$SDIST_DIR/.$HVD_SDIST.$$" "$SDIST_DIR/$HVD_SDIST"
fi
sdist_ok || die "$SDIST_DIR/$HVD_SDIST does not match sha256 $HVD_SDIST_SHA256"

tar -xzf "$SDIST_DIR/$HVD_SDIST" -C "$TMP_DIR"
SRC="$TMP_DIR/horovod-${HVD_VERSION}"
[ -d "$SRC" ] || die "unexpected sdist layout (no horovod-${HVD_VERSION}/)"

# C++14 -> C++17: torch's headers require C++17.
for f in CMakeLists.txt horovod/torch/CMakeLists.txt; do
    pat='set(CMAKE_CXX_STANDARD[[:space:]]\{1,\}14)'
    grep -q "$pat" "$SRC/$f" || die "$f has no 'set(CMAKE_CXX_STANDARD 14)'; the sdist changed, patch by hand"
    sed -i "s/$pat/set(CMAKE_CXX_STANDARD 17)/" "$SRC/$f"
    if grep -q "$pat" "$SRC/$f" || ! grep -q 'set(CMAKE_CXX_STANDARD 17)' "$SRC/$f"; then
        die "raising CMAKE_CXX_STANDARD to 17 in $f failed"
    fi
done
log "patched CMAKE_CXX_STANDARD 14 -> 17 (CMakeLists.txt, horovod/torch/CMakeLists.txt)"

JOBS="${HOROVOD_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"
log "building horovod ${HVD_VERSION} against torch ${TORCH_VERSION} (${PY_TAG}, -j${JOBS}; a few minutes)"
BUILD_LOG="$TMP_DIR/build.log"
build() (
    # Subshell: settings from the caller's environment that would change the build go.
    unset HOROVOD_WITHOUT_GLOO HOROVOD_WITHOUT_PYTORCH HOROVOD_WITH_MPI HOROVOD_WITH_TENSORFLOW \
          HOROVOD_WITH_MXNET HOROVOD_GPU HOROVOD_GPU_OPERATIONS HOROVOD_GPU_ALLREDUCE \
          HOROVOD_GPU_ALLGATHER HOROVOD_GPU_BROADCAST HOROVOD_DEBUG HOROVOD_SKIP_COMPILE
    export HOROVOD_WITH_PYTORCH=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_WITH_GLOO=1 \
           HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 MAKEFLAGS="-j${JOBS}"
    "${PIP[@]}" wheel -v --no-build-isolation --no-deps -w "$TMP_DIR/built" "$SRC"
)
if [ "${HOROVOD_BUILD_VERBOSE:-0}" = 1 ]; then
    build 2>&1 | tee "$BUILD_LOG"
else
    if ! build >"$BUILD_LOG" 2>&1; then
        cp -f "$BUILD_LOG" "$KEY_DIR/build-failed.log" 2>/dev/null || true
        tail -n 60 "$BUILD_LOG" >&2
        die "build failed (full log: $KEY_DIR/build-failed.log)"
    fi
fi
shopt -s nullglob
BUILT=("$TMP_DIR"/built/horovod-"${HVD_VERSION}"-*.whl)
shopt -u nullglob
[ "${#BUILT[@]}" -eq 1 ] || die "expected one horovod wheel in $TMP_DIR/built, found ${#BUILT[@]}"
RAW_SIZE="$(du -h "${BUILT[0]}" | cut -f1)"
log "built $(basename "${BUILT[0]}") (${RAW_SIZE}) in $((SECONDS - START)) s"

# Strip debug info (RelWithDebInfo build) and repack; `wheel pack` rewrites RECORD.
"$PY" -m wheel unpack -d "$TMP_DIR/unpacked" "${BUILT[0]}" >/dev/null
UNPACKED="$TMP_DIR/unpacked/horovod-${HVD_VERSION}"
[ -d "$UNPACKED" ] || die "wheel unpack produced no $UNPACKED"
n_so=0
while IFS= read -r -d '' so; do
    strip --strip-debug "$so"
    n_so=$((n_so + 1))
done < <(find "$UNPACKED" -type f -name '*.so*' -print0)
[ "$n_so" -gt 0 ] || die "no shared libraries in the built wheel (was the extension compiled?)"
mkdir -p "$TMP_DIR/final"
"$PY" -m wheel pack -d "$TMP_DIR/final" "$UNPACKED" >/dev/null
shopt -s nullglob
FINAL=("$TMP_DIR"/final/horovod-"${HVD_VERSION}"-*.whl)
shopt -u nullglob
[ "${#FINAL[@]}" -eq 1 ] || die "wheel pack did not produce one wheel"
log "stripped ${n_so} shared libraries: ${RAW_SIZE} -> $(du -h "${FINAL[0]}" | cut -f1)"

# Atomic publish: copy under a temp name inside the cache dir, then rename.
NAME="$(basename "${FINAL[0]}")"
cp -f "${FINAL[0]}" "$KEY_DIR/.$NAME.$$.tmp"
mv -f "$KEY_DIR/.$NAME.$$.tmp" "$KEY_DIR/$NAME"
rm -f "$KEY_DIR/build-failed.log"
log "cached $KEY_DIR/$NAME"

install_wheel "$KEY_DIR/$NAME"
log "total $((SECONDS - START)) s"
