#!/usr/bin/env bash
# The prepared run on a GPU machine without a package registry (README "GPU"): install,
# build, GPU tests, GPU benchmark; results into $OUT.
#
#   tools/gpu_wheels.sh                     # here, with a registry: fills gpu_wheels/
#   bash tools/gpu_run.sh [install] [tests] [bench]   # there (default: all three)
#
# install  the wheels of gpu_wheels/ (tools/gpu_wheels.sh) into $SITE with pip --target
#          (the machine's Python keeps its torch; PYTHONPATH puts $SITE first); mmcv from a
#          carried mmcv-*.whl if there is one, else built from the carried sdist with CUDA ops
#          for the visible GPU (tools/build_mmcv.sh, MAX_JOBS = all cores); mmcnv2's C++
#          extension built in place unless a carried build loads; then a check that mmcv's
#          CUDA ops run on the GPU.
# tests    tests/test_gpu on the GPU (junit XML and log in $OUT).
# bench    tools/benchmark.py --device cuda (JSON and markdown in $OUT).
#
# Environment: OUT (default work_dirs/gpu_run), GPU_WHEELS (default gpu_wheels),
# SITE (default /tmp/mmcnv2-site), PYTHON (default python3), GPU_RUN_DEVICE (cuda; cpu
# checks the same steps on a machine without a GPU, with the CPU mmcv and tiny benchmark
# settings), BENCH_ARGS (extra tools/benchmark.py arguments).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$ROOT/work_dirs/gpu_run}"
WHEELS="${GPU_WHEELS:-$ROOT/gpu_wheels}"
SITE="${SITE:-/tmp/mmcnv2-site}"
PYTHON="${PYTHON:-python3}"
DEVICE="${GPU_RUN_DEVICE:-cuda}"
mkdir -p "$OUT"
LOG="$OUT/gpu_run.log"
export PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

log() { echo "[gpu_run $(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }
die() { log "error: $*"; exit 1; }

# timed NAME CMD...: run CMD, log its duration and status to $OUT/steps.tsv
timed() {
    local name="$1" start=$SECONDS rc
    shift
    log "$name: $*"
    "$@" 2>&1 | tee -a "$LOG"
    rc=${PIPESTATUS[0]}
    printf '%s\t%s\t%s\n' "$name" "$((SECONDS - start))" "$rc" >> "$OUT/steps.tsv"
    log "$name: exit $rc after $((SECONDS - start)) s"
    return "$rc"
}

machine() {
    nvidia-smi -L 2>/dev/null | tee -a "$LOG" || log 'nvidia-smi: not found'
    "$PYTHON" -c 'import sys, torch
print("python", sys.version.split()[0], "torch", torch.__version__, "CUDA", torch.version.cuda,
      "GPU", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)' | tee -a "$LOG"
    nproc | sed 's/^/cores: /' | tee -a "$LOG"
}

install_wheels() {
    ls "$WHEELS"/*.whl >/dev/null 2>&1 || die "no wheels in $WHEELS: run tools/gpu_wheels.sh where pip works"
    local wheels=()
    mapfile -t wheels < <(ls "$WHEELS"/*.whl | grep -v '/mmcv-')
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "${wheels[@]}"
}

install_mmcv() {
    local wheel
    wheel="$(ls "$WHEELS"/mmcv-*-cp3*.whl 2>/dev/null | head -1 || true)"
    if [[ -z "$wheel" || "$DEVICE" == cpu ]]; then
        local sdist
        sdist="$(ls "$WHEELS"/mmcv-*.tar.gz | head -1)" || die "no mmcv sdist in $WHEELS"
        wheel="$(MMCV_SDIST="$sdist" MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
            bash "$ROOT/tools/build_mmcv.sh" "$PYTHON" "$DEVICE" | tail -1)" || return 1
    fi
    "$PYTHON" -m pip install -q --no-index --no-deps --no-cache-dir --upgrade --target "$SITE" "$wheel"
}

build_extension() {
    # a build carried along for this Python and torch (mmcnv2/_ext*.so) is kept when it loads
    if "$PYTHON" -c 'import sys; from mmcnv2.ops import extension_error
sys.exit(extension_error() is not None)' 2>/dev/null; then
        log 'mmcnv2._ext: already built for this Python and torch'
        return
    fi
    (cd "$ROOT" && "$PYTHON" setup.py -q build_ext --inplace)
}

check_ops() {
    "$PYTHON" - "$DEVICE" <<'EOF'
import sys

import mmcv
import mmcv.ops
import mmdet.models  # noqa: F401
import mmpretrain.models  # noqa: F401

import mmcnv2
from mmcnv2.ops import extension_error
from mmcnv2.utils import check_mmcv_ops

print('mmcv', mmcv.__version__, 'CUDA ops:', mmcv.ops.get_compiling_cuda_version(),
      '| mmcnv2', mmcnv2.__file__, '| extension:', extension_error() or 'built')
check_mmcv_ops(sys.argv[1])
print('mmcv ops run on', sys.argv[1])
EOF
}

run_install() {
    timed wheels install_wheels || return 1
    timed mmcv install_mmcv || return 1
    timed extension build_extension || return 1
    timed check check_ops
}

run_tests() {
    local tests="${GPU_TESTS:-tests/test_gpu}"
    # shellcheck disable=SC2086
    (cd "$ROOT" && MMCNV2_TEST_DEVICE="$DEVICE" timed tests "$PYTHON" -m pytest -q -p no:cacheprovider \
        -o addopts='' --junitxml="$OUT/gpu_tests.xml" -rs $tests)
}

run_bench() {
    local args=(--device "$DEVICE" --markdown --out "$OUT/gpu_benchmark.json")
    [[ "$DEVICE" == cpu ]] && args+=(--train --train-batch 2 --batches 1 --size 32 --budget 0
                                     --models CondenseNetV2-A --det-size 64 96 --det-amp none)
    # shellcheck disable=SC2086
    (cd "$ROOT" && timed bench "$PYTHON" tools/benchmark.py "${args[@]}" ${BENCH_ARGS:-} \
        && "$PYTHON" tools/benchmark.py --from-json "$OUT/gpu_benchmark.json" --markdown \
        > "$OUT/gpu_benchmark.md")
}

main() {
    local steps=("$@") status=0 step
    [[ ${#steps[@]} -gt 0 ]] || steps=(install tests bench)
    for step in "${steps[@]}"; do
        [[ "$step" =~ ^(install|tests|bench)$ ]] || die "steps are install, tests, bench; got '$step'"
    done
    [[ "$DEVICE" == cuda || "$DEVICE" == cpu ]] || die "GPU_RUN_DEVICE must be cuda or cpu, got '$DEVICE'"
    : > "$OUT/steps.tsv"
    machine
    for step in "${steps[@]}"; do
        case "$step" in
            install) run_install || { log 'install failed: stopping'; exit 1; } ;;
            tests) run_tests || status=1 ;;
            bench) run_bench || status=1 ;;
        esac
    done
    log "steps (name, seconds, exit code):"
    tee -a "$LOG" < "$OUT/steps.tsv"
    exit "$status"
}

main "$@"
