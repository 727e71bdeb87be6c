#!/usr/bin/env bash
# Install mmcnv2 with one `pip install` into an OpenMMLab environment other than the pinned
# one, and run a representative part of the test suite against the installed package.
#
#   tools/check_install.sh TORCH PYTHON          e.g. tools/check_install.sh 2.11.0 3.12
#   make check-install TORCH=2.11.0 PYTHON=3.12
#
# 1. An environment as a user would have it (created once, reused): Python PYTHON, torch TORCH
#    and its torchvision (0.(minor+15).patch, or TORCHVISION), mmcv built with ops for that
#    torch (tools/build_mmcv.sh; CHECK_DEVICE=cpu by default, cuda for CUDA ops), and the
#    latest mmengine, mmdet and mmpretrain from the registry.
# 2. `pip install --no-build-isolation <repo>[tests]`, not editable: pip checks setup.py's
#    version ranges against that environment and compiles mmcnv2._ext against its torch.
# 3. The tests of CHECK_TESTS, from a copy of the repository without the mmcnv2 sources, so
#    that `import mmcnv2` is the installed package: models, hook, conversion, the fused form
#    with its C++ extension, two detectors' loss and predict, checkpoint loading, and the GPU
#    tests on CHECK_TEST_DEVICE (cpu unless a GPU is visible; on 2 CPU cores they take the
#    longest, CHECK_TESTS can leave them out).
#
# Environment: CHECK_VENV (default $MMCNV2_CACHE/venvs/check-py<PYTHON>-torch<TORCH>-<device>),
# MMCNV2_CACHE (default ~/.cache/mmcnv2), MAX_JOBS (mmcv's build).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MMCNV2_CACHE:-$HOME/.cache/mmcnv2}"
TESTS_DEFAULT="tests/test_models/test_layers.py tests/test_models/test_condensenet_v2.py
tests/test_models/test_sfr_shufflenet.py tests/test_models/test_fused.py tests/test_ops
tests/test_engine/test_sparsify_hook.py tests/test_tools/test_convert.py
tests/test_det/test_det_configs.py::test_loss_and_predict_step[retinanet_cnv2_c.py]
tests/test_det/test_det_configs.py::test_loss_and_predict_step[faster_rcnn_cnv2_c.py]
tests/test_checkpoint/test_safe_globals.py tests/test_gpu"

log() { echo "[check_install] $*"; }
die() { echo "[check_install] error: $*" >&2; exit 1; }

# find_python X.Y: an interpreter of that version (PATH, then pyenv's versions).
find_python() {
    local candidate
    for candidate in "python$1" $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1"*/bin/python"$1" 2>/dev/null | sort -V -r); do
        if "$candidate" -c "import sys; assert sys.version.startswith('$1.')" 2>/dev/null; then
            command -v "$candidate"
            return
        fi
    done
    die "no Python $1 found (PATH, pyenv)"
}

# default_torchvision 2.11.0 -> 0.26.0 (torchvision's minor is torch's + 15 since torch 2.0)
default_torchvision() {
    local minor patch
    IFS=. read -r _ minor patch <<<"$1"
    echo "0.$((minor + 15)).${patch:-0}"
}

make_env() {
    local venv="$1" python="$2" py
    py="$venv/bin/python"
    if [[ -f "$venv/.check-env" && "$(cat "$venv/.check-env")" == "$ENV_KEY" ]]; then
        log "reusing $venv ($ENV_KEY)"
        return
    fi
    log "creating $venv: Python $PYTHON_VERSION, torch $TORCH_VERSION, torchvision $TORCHVISION_VERSION"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$py" -m pip install -q --upgrade "pip==25.3" wheel
    "$py" -m pip install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
    local wheel
    wheel="$(MMCNV2_CACHE="$CACHE" bash "$ROOT/tools/build_mmcv.sh" "$py" "$DEVICE" | tail -1)"
    "$py" -m pip install -q "$wheel"
    "$py" -m pip install -q mmengine mmdet mmpretrain
    echo "$ENV_KEY" > "$venv/.check-env"
}

run_tests() {
    local py="$1" copy
    copy="$(mktemp -d)"
    trap 'rm -rf "$copy"' EXIT
    # everything git knows of (tracked or not ignored), except the package's sources
    (cd "$ROOT" && git ls-files -co --exclude-standard | grep -v '^mmcnv2/' | tar -cf - -T -) \
        | tar -xf - -C "$copy"
    (cd "$copy" && "$py" -c 'import mmcnv2, sys; f = mmcnv2.__file__
assert "site-packages" in f, f"tests would not see the installed mmcnv2 but {f}"
print("[check_install] testing", f)')
    # shellcheck disable=SC2086
    (cd "$copy" && MMCNV2_TEST_DEVICE="$TEST_DEVICE" "$py" -m pytest -q -p no:cacheprovider $CHECK_TESTS)
}

main() {
    [[ $# -eq 2 ]] || die "usage: tools/check_install.sh TORCH PYTHON (e.g. 2.11.0 3.12)"
    TORCH_VERSION="$1"
    PYTHON_VERSION="$2"
    TORCHVISION_VERSION="${TORCHVISION:-$(default_torchvision "$TORCH_VERSION")}"
    DEVICE="${CHECK_DEVICE:-cpu}"
    CHECK_TESTS="${CHECK_TESTS:-$TESTS_DEFAULT}"
    [[ "$DEVICE" == cpu || "$DEVICE" == cuda ]] || die "CHECK_DEVICE must be cpu or cuda, got '$DEVICE'"
    ENV_KEY="py$PYTHON_VERSION-torch$TORCH_VERSION-tv$TORCHVISION_VERSION-$DEVICE"
    local venv="${CHECK_VENV:-$CACHE/venvs/check-$ENV_KEY}" python py
    python="$(find_python "$PYTHON_VERSION")"
    py="$venv/bin/python"
    make_env "$venv" "$python"
    log "pip install --no-build-isolation $ROOT[tests]"
    "$py" -m pip uninstall -q -y mmcnv2 2>/dev/null || true
    (cd /tmp && "$py" -m pip install -q --no-build-isolation "$ROOT[tests]")
    TEST_DEVICE="${CHECK_TEST_DEVICE:-$("$py" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')}"
    "$py" -m pip list 2>/dev/null | grep -E -i '^(torch|torchvision|mmcv|mmengine|mmdet|mmpretrain|mmcnv2|numpy|setuptools) ' \
        | sed 's/^/[check_install]   /'
    run_tests "$py"
    log "passed: $ENV_KEY, $(date -u +%Y-%m-%d), $(nproc) cores"
}

main "$@"
