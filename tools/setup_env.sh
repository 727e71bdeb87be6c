#!/usr/bin/env bash
# Create (or reuse) the mmcnv2 virtual environment.
#
#   MMCNV2_DEVICE  auto (default) | cpu | cuda: what mmcv's compiled ops are built for.
#                  auto = cuda when the installed torch sees a GPU, else cpu.
#                  cpu  = CPU ops only, also on a GPU machine (such an mmcv cannot train our
#                         detectors on the GPU).
#                  cuda = CPU and CUDA ops, for the visible GPUs' architectures or those of
#                         TORCH_CUDA_ARCH_LIST (required without a GPU: cross-compiling), with
#                         the machine's CUDA toolkit when its nvcc matches torch's CUDA major
#                         version, else one assembled from the registry (tools/build_mmcv.sh).
#   MMCNV2_VENV    where the environment lives (default: <repo>/.venv)
#   MMCNV2_CACHE   where built mmcv wheels are cached, outside any clone
#                  (default: ~/.cache/mmcnv2), so a machine builds each one once.
#   MMCNV2_PYTHON  the interpreter to create the environment with (default: python3.11)
#
# The environment is complete when it holds a stamp file whose content equals the hash of the
# requirement files and set-up scripts; otherwise it is (re)built. The mmcv build it holds is
# recorded next to the stamp and replaced when MMCNV2_DEVICE asks for another one.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMCNV2_VENV:-$ROOT/.venv}"
PYTHON="${MMCNV2_PYTHON:-python3.11}"
DEVICE_CHOICE="${MMCNV2_DEVICE:-auto}"
STAMP="$VENV/.mmcnv2-env-stamp"
MMCV_STAMP="$VENV/.mmcnv2-mmcv"
PIP=("$VENV/bin/python" -m pip)

log() { echo "[setup_env] $*"; }
die() { echo "[setup_env] error: $*" >&2; exit 1; }

check_device_choice() {
    case "$DEVICE_CHOICE" in
        auto|cpu|cuda) ;;
        *) die "MMCNV2_DEVICE must be one of auto, cpu, cuda; got '$DEVICE_CHOICE'" ;;
    esac
}

stamp_value() {
    cat "$ROOT"/requirements/*.txt "$ROOT/tools/setup_env.sh" "$ROOT/tools/build_mmcv.sh" \
        | sha256sum | cut -c1-16
}

# resolve_device: cpu or cuda, from MMCNV2_DEVICE and what the environment's torch sees.
resolve_device() {
    local sees
    sees="$("$VENV/bin/python" -c 'import torch; print("gpu" if torch.cuda.is_available() else "none")')"
    case "$DEVICE_CHOICE" in
        auto)
            if [[ "$sees" == gpu ]]; then DEVICE=cuda; else DEVICE=cpu; fi
            log "device: $DEVICE (MMCNV2_DEVICE=auto: torch $(torch_summary) sees $([[ $sees == gpu ]] && echo a GPU || echo no GPU))" ;;
        *)
            DEVICE="$DEVICE_CHOICE"
            log "device: $DEVICE (MMCNV2_DEVICE=$DEVICE_CHOICE; torch $(torch_summary) sees $([[ $sees == gpu ]] && echo a GPU || echo no GPU))" ;;
    esac
}

torch_summary() {
    "$VENV/bin/python" -c 'import torch; print(torch.__version__)'
}

create_venv() {
    log "creating environment in $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "${PIP[@]}" install -q --upgrade "pip==25.3" wheel
    "${PIP[@]}" install -q -r "$ROOT/requirements/runtime.txt"
}

# ensure_mmcv: install mmcv built for DEVICE (from the cache, built there when missing).
ensure_mmcv() {
    local wheel
    if [[ "$DEVICE" == cpu ]]; then
        log "mmcv with CPU ops (built once per machine and cached, ~20 min on 2 cores)"
    else
        log "mmcv with CUDA ops (built once per machine, arch list and torch; cached)"
    fi
    wheel="$(bash "$ROOT/tools/build_mmcv.sh" "$VENV/bin/python" "$DEVICE" | tail -1)"
    if [[ ! -f "$MMCV_STAMP" ]]; then
        "${PIP[@]}" install -q "$wheel"
    elif [[ "$(cat "$MMCV_STAMP")" != "$wheel" ]]; then
        log "replacing mmcv $(basename "$(dirname "$(cat "$MMCV_STAMP")")")"
        "${PIP[@]}" install -q --force-reinstall --no-deps "$wheel"
    fi
    echo "$wheel" > "$MMCV_STAMP"
    log "mmcv: $(dirname "$wheel")"
}

# ensure_mmcnv2: mmcnv2 installed editable from this checkout (a shared environment may
# still point at another clone), with its compiled extension (gone after a clean, or built
# from older sources) unless MMCNV2_WITH_OPS=0.
ensure_mmcnv2() {
    local where ops="built"
    where="$(cd /tmp && "$VENV/bin/python" -c 'import mmcnv2, os; print(os.path.dirname(os.path.dirname(os.path.realpath(mmcnv2.__file__))))' 2>/dev/null || true)"
    if [[ "${MMCNV2_WITH_OPS:-1}" != 0 ]]; then
        ops="$(cd /tmp && "$VENV/bin/python" -c 'from mmcnv2.ops import extension_error; print(extension_error() or "built")' 2>/dev/null || echo missing)"
    fi
    if [[ "$where" != "$(realpath "$ROOT")" || "$ops" != built ]]; then
        log "installing mmcnv2 from $ROOT (extension: $ops)"
        "${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"
    fi
}

main() {
    check_device_choice
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp_value)" ]]; then
        resolve_device
        ensure_mmcv
        ensure_mmcnv2
        exit 0
    fi
    create_venv
    resolve_device
    ensure_mmcv
    "${PIP[@]}" install -q -r "$ROOT/requirements/tests.txt" -r "$ROOT/requirements/deploy.txt"
    ensure_mmcnv2
    "$VENV/bin/python" -c "import mmcv.ops, mmdet.models, mmpretrain.models, mmcnv2"
    stamp_value > "$STAMP"
    log "environment ready: $VENV (mmcv ops: $DEVICE)"
}

main "$@"
