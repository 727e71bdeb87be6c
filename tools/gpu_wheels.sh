#!/usr/bin/env bash
# Download what tools/gpu_run.sh installs on a GPU machine that has no package registry.
#
#   tools/gpu_wheels.sh [DIR]          (default: gpu_wheels/, git-ignored)
#
# The GPU machine this project can use has Python 3.12 with torch 2.11 (CUDA 13.0), nvcc 13.0
# and, in its image, numpy, scipy, matplotlib, opencv-python-headless, pillow, pyyaml, rich,
# tqdm, six, einops, click, markdown, scikit-learn, pytest, ninja and psutil. What it lacks
# is fetched here for CPython 3.12 on manylinux x86_64, with the versions tested in
# tools/check_install.sh: the OpenMMLab packages, their pure-Python needs missing there,
# setuptools < 81 (mmcv's setup.py and mmengine's `mmdet::` config lookup use pkg_resources),
# and mmcv's sdist, which gpu_run.sh compiles there with CUDA. MMCV_WHEEL=path/to/mmcv-*.whl
# adds an mmcv already built for that machine (tools/build_mmcv.sh on a Python 3.12 + torch
# 2.11 environment with TORCH_CUDA_ARCH_LIST=9.0), which saves the build there.
#
# One call of the device tool carries at most 64 MiB: the repository's files and DIR
# together. The script fails when they would not fit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${1:-$ROOT/gpu_wheels}"
VENV_PYTHON="${MMCNV2_VENV:-$ROOT/.venv}/bin/python"
# a pip with setuptools < 81 and wheel (mmcv's sdist runs its setup.py to give its metadata)
PYTHON="${MMCNV2_PYTHON:-$([[ -x "$VENV_PYTHON" ]] && echo "$VENV_PYTHON" || echo python3)}"
LIMIT=$((64 * 1024 * 1024))

#: Missing on the GPU machine's image, pinned to what tools/check_install.sh installed.
PACKAGES=(
    mmengine==0.10.7 mmdet==3.3.0 mmpretrain==1.2.0
    addict==2.4.0 yapf==0.43.0 platformdirs==4.14.9 termcolor==3.3.0   # mmengine
    pycocotools==2.0.11 shapely==2.2.0 terminaltables==3.1.10         # mmdet
    mat4py==0.6.0 modelindex==0.0.2 model-index==0.1.11 ordered-set==4.1.0
    importlib_metadata==10.2.0                                        # mmpretrain
    setuptools==80.10.2
)
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64
           manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64)

log() { echo "[gpu_wheels] $*"; }
die() { echo "[gpu_wheels] error: $*" >&2; exit 1; }

download() {
    local platform_args=() p
    for p in "${PLATFORMS[@]}"; do platform_args+=(--platform "$p"); done
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp "${platform_args[@]}" -d "$DIR" "${PACKAGES[@]}"
    local mmcv
    mmcv="$(grep -E '^mmcv==' "$ROOT/requirements/mmcv.txt" | cut -d= -f3)"
    if [[ ! -f "$DIR/mmcv-$mmcv.tar.gz" ]]; then
        "$PYTHON" -m pip download -q --no-deps --no-binary :all: --no-build-isolation \
            "mmcv==$mmcv" -d "$DIR" \
            || die "could not download the mmcv $mmcv sdist (its metadata step needs setuptools < 81 and wheel in $PYTHON's environment)"
    fi
    if [[ -n "${MMCV_WHEEL:-}" ]]; then
        [[ "$MMCV_WHEEL" == *cp312*.whl && -f "$MMCV_WHEEL" ]] \
            || die "MMCV_WHEEL must be an existing cp312 mmcv wheel, got '$MMCV_WHEEL'"
        cp "$MMCV_WHEEL" "$DIR/"
    fi
}

check_size() {
    local wheels tree total
    wheels="$(du -cb "$DIR"/* | tail -1 | cut -f1)"
    tree="$(cd "$ROOT" && git ls-files -z -co --exclude-standard | xargs -0 du -cb 2>/dev/null | awk '/\ttotal$/ {s += $1} END {print s}')"
    total=$((wheels + tree))
    log "$(ls "$DIR" | wc -l) files, $((wheels / 1024)) KiB; with the repository's $((tree / 1024)) KiB: $((total / 1024 / 1024)) MiB of the 64 MiB one device call carries"
    (( total < LIMIT )) || die "too large for one device call: $total bytes"
}

main() {
    mkdir -p "$DIR"
    log "downloading into $DIR"
    download
    check_size
}

main "$@"
