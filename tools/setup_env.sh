#!/usr/bin/env bash
# Create (or reuse) the mmcnv2 virtual environment.
#
#   MMCNV2_VENV   where the environment lives (default: <repo>/.venv)
#   MMCNV2_CACHE  where the built mmcv wheel is cached, outside any clone
#                 (default: ~/.cache/mmcnv2), so a machine builds it once.
#
# The environment is considered complete when it holds a stamp file whose
# content equals the hash of the requirement files; otherwise it is (re)built.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMCNV2_VENV:-$ROOT/.venv}"
CACHE="${MMCNV2_CACHE:-$HOME/.cache/mmcnv2}"
PYTHON="${MMCNV2_PYTHON:-python3.11}"
MMCV_VERSION="$(grep -E '^mmcv==' "$ROOT/requirements/mmcv.txt" | cut -d= -f3)"
TORCH_VERSION="$(grep -E '^torch==' "$ROOT/requirements/runtime.txt" | cut -d= -f3)"

stamp_value() {
    cat "$ROOT"/requirements/*.txt "$ROOT/tools/setup_env.sh" | sha256sum | cut -c1-16
}

STAMP="$VENV/.mmcnv2-env-stamp"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp_value)" ]]; then
    # Requirements unchanged: only make sure mmcnv2 is installed from this checkout (a
    # shared environment may still point at another clone) with its compiled extension
    # (gone after a clean, or built from older sources) unless MMCNV2_WITH_OPS=0.
    where="$(cd /tmp && "$VENV/bin/python" -c 'import mmcnv2, os; print(os.path.dirname(os.path.dirname(os.path.realpath(mmcnv2.__file__))))' 2>/dev/null || true)"
    ops="built"
    if [[ "${MMCNV2_WITH_OPS:-1}" != 0 ]]; then
        ops="$(cd /tmp && "$VENV/bin/python" -c 'from mmcnv2.ops import extension_error; print(extension_error() or "built")' 2>/dev/null || echo missing)"
    fi
    if [[ "$where" != "$(realpath "$ROOT")" || "$ops" != built ]]; then
        echo "[setup_env] installing mmcnv2 from $ROOT (extension: $ops)"
        "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$ROOT"
    fi
    exit 0
fi

echo "[setup_env] creating environment in $VENV"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install -q --upgrade "pip==25.3" wheel
"${PIP[@]}" install -q -r "$ROOT/requirements/runtime.txt"

PYTAG="$("$VENV/bin/python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION-torch$TORCH_VERSION-$PYTAG-cpu"
if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    echo "[setup_env] building mmcv $MMCV_VERSION with CPU ops (once per machine, ~20 min on 2 cores)"
    BUILD="$(mktemp -d)"
    "${PIP[@]}" download -q --no-deps --no-build-isolation --no-binary :all: "mmcv==$MMCV_VERSION" -d "$BUILD"
    tar -xzf "$BUILD"/mmcv-"$MMCV_VERSION".tar.gz -C "$BUILD"
    SRC="$BUILD/mmcv-$MMCV_VERSION"
    # torch >= 2.10 headers refuse anything older than C++20.
    grep -q "extra_compile_args\['cxx'\] = \['-std=c++17'\]" "$SRC/setup.py"
    sed -i "s/extra_compile_args\['cxx'\] = \['-std=c++17'\]/extra_compile_args['cxx'] = ['-std=c++20']/" "$SRC/setup.py"
    "${PIP[@]}" install -q ninja psutil
    mkdir -p "$WHEEL_DIR.tmp"
    (cd "$SRC" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-2}" \
        "$VENV/bin/python" -m pip wheel --no-build-isolation --no-deps -w "$WHEEL_DIR.tmp" .)
    rm -rf "$WHEEL_DIR" && mv "$WHEEL_DIR.tmp" "$WHEEL_DIR"
    rm -rf "$BUILD"
fi
"${PIP[@]}" install -q "$WHEEL_DIR"/mmcv-*.whl
"${PIP[@]}" install -q -r "$ROOT/requirements/tests.txt" -r "$ROOT/requirements/deploy.txt"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"
"$VENV/bin/python" -c "import mmcv.ops, mmdet.models, mmpretrain.models, mmcnv2"
stamp_value > "$STAMP"
echo "[setup_env] environment ready: $VENV"
