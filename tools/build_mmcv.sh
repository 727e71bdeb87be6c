#!/usr/bin/env bash
# Build (or take from the cache) an mmcv wheel with compiled ops for one environment.
#
#   tools/build_mmcv.sh PYTHON cpu|cuda
#
# PYTHON is the interpreter of the environment to build for: its torch is compiled against.
# The last line printed on stdout is the wheel's path; everything else goes to stderr.
# PyPI ships mmcv 2.1.0 as source only, and its setup.py needs two changes for torch >= 2.10,
# whose headers refuse anything older than C++20: `-std=c++20` instead of `-std=c++17` for the
# host compiler and, in a CUDA build, for nvcc. The patch is checked; a changed setup.py fails.
#
#   cpu   CPU kernels only, even on a machine with a GPU (mmcv's setup.py builds its CUDA
#         kernels whenever torch sees a GPU, whatever FORCE_CUDA says, so the GPU is hidden
#         from the build).
#   cuda  CPU and CUDA kernels, for the architectures of TORCH_CUDA_ARCH_LIST or, when it is
#         unset, of the GPUs torch sees (no GPU and no TORCH_CUDA_ARCH_LIST is an error).
#         The CUDA toolkit is the machine's when its nvcc has torch's CUDA major version
#         (CUDA_HOME, else nvcc on PATH, else /usr/local/cuda), otherwise one assembled from
#         the registry's compiler wheels (nvidia-cuda-nvcc, -crt, nvidia-nvvm, -cccl) of
#         torch's CUDA major.minor and the CUDA headers and libraries torch brought along.
#         Either way the headers of torch's CUDA libraries (site-packages/nvidia/cuXX/include:
#         cuBLAS, cuSPARSE, cuSOLVER, which ATen's CUDA headers include) are on CPATH, since
#         a minimal toolkit (nvcc and the runtime only) lacks them.
#
# Environment:
#   MMCNV2_CACHE         cache folder (default ~/.cache/mmcnv2); wheels/<key>/ holds each build,
#                        key = mmcv, torch, Python (and CUDA version and arch list for cuda)
#   MMCV_VERSION         default: the pin in requirements/mmcv.txt
#   MMCV_SDIST           a local mmcv-<version>.tar.gz (no registry needed); default: download it
#   MMCNV2_CUDA_TOOLKIT  auto (default) | machine | registry: which CUDA toolkit to compile with
#   TORCH_CUDA_ARCH_LIST e.g. "9.0" or "8.0;9.0+PTX" (torch's syntax)
#   MAX_JOBS             parallel compile jobs (default: number of cores)
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MMCNV2_CACHE:-$HOME/.cache/mmcnv2}"
MMCV_VERSION="${MMCV_VERSION:-$(grep -E '^mmcv==' "$ROOT/requirements/mmcv.txt" | cut -d= -f3)}"

log() { echo "[build_mmcv] $*" >&2; }
die() { echo "[build_mmcv] error: $*" >&2; exit 1; }

usage() {
    die "usage: tools/build_mmcv.sh PYTHON cpu|cuda (got: $*)"
}

# torch_info PYTHON: "<torch version without local tag> <cpXY> <torch's CUDA version or ''>"
torch_info() {
    CUDA_VISIBLE_DEVICES='' "$1" -c 'import sys, torch
print(torch.__version__.split("+")[0], f"cp{sys.version_info[0]}{sys.version_info[1]}",
      torch.version.cuda or "")'
}

# gpu_arch_list PYTHON: the compute capabilities of the visible GPUs ("8.0;9.0"), or ''.
gpu_arch_list() {
    "$1" -c 'import torch
caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
              if torch.cuda.is_available() else set())
print(";".join(f"{a}.{b}" for a, b in caps))'
}

# arch_tag "8.0;9.0+PTX" -> sm80_sm90+ptx (for the cache key)
arch_tag() {
    local tag
    tag="$(echo "$1" | tr ' ;,' '\n\n\n' | sed '/^$/d' | sort -u | sed 's/\.//; s/^/sm/; s/+PTX/+ptx/' | paste -sd_)"
    echo "$tag"
}

# nvcc_release NVCC: "13.0"
nvcc_release() {
    "$1" --version 2>/dev/null | sed -n 's/.*release \([0-9]*\.[0-9]*\).*/\1/p'
}

# nvcc_home NVCC: the toolkit folder an nvcc belongs to (nvcc may be a wrapper script).
nvcc_home() {
    local src
    src="$(mktemp --suffix=.cu)"
    "$1" --dryrun -c "$src" -o /dev/null 2>&1 | sed -n 's|^#\$ TOP=\(.*\)/bin/\.\.$|\1|p' | head -1
    rm -f "$src"
}

# machine_toolkit CUDA_VERSION: prints CUDA_HOME of a machine toolkit (CUDA_HOME, nvcc on
# PATH, /usr/local/cuda) whose nvcc has the same major version as torch's CUDA, or nothing.
machine_toolkit() {
    local want_major="${1%%.*}" nvcc home release
    for nvcc in ${CUDA_HOME:+"$CUDA_HOME/bin/nvcc"} "$(command -v nvcc || true)" /usr/local/cuda/bin/nvcc; do
        [[ -n "$nvcc" && -x "$nvcc" ]] || continue
        home="$(nvcc_home "$nvcc")"
        if [[ -z "$home" || ! -f "$home/include/cuda_runtime_api.h" ]]; then
            log "ignoring $nvcc: no toolkit folder with the CUDA headers found for it"
            continue
        fi
        release="$(nvcc_release "$nvcc")"
        if [[ "${release%%.*}" == "$want_major" ]]; then
            echo "$home"
            return
        fi
        log "ignoring $nvcc: CUDA $release, torch was built with CUDA $1"
    done
}

# registry_toolkit PYTHON CUDA_VERSION: assembles a toolkit from the registry's compiler wheels
# of CUDA major.minor next to the CUDA headers/libraries that torch's wheel brought into
# site-packages/nvidia/cuXX; prints its CUDA_HOME.
registry_toolkit() {
    local python="$1" cuda="$2" major="${2%%.*}" site home tk
    site="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    [[ -d "$site/nvidia/cu$major/include" ]] \
        || die "no CUDA headers in $site/nvidia/cu$major (torch's CUDA $cuda runtime wheels); cannot assemble a toolkit"
    tk="$CACHE/cuda-toolkit/cu$cuda-$(echo "$site" | sha256sum | cut -c1-8)"  # per environment
    home="$tk/nvidia/cu$major"
    if [[ ! -x "$home/bin/nvcc" ]]; then
        log "assembling a CUDA $cuda toolkit from the registry in $tk"
        rm -rf "$tk.tmp"
        "$python" -m pip install -q --no-deps --target "$tk.tmp" \
            "nvidia-cuda-nvcc==$cuda.*" "nvidia-cuda-crt==$cuda.*" "nvidia-nvvm==$cuda.*" \
            "nvidia-cuda-cccl==$cuda.*" \
            || die "could not install the CUDA $cuda compiler wheels (nvidia-cuda-nvcc, nvidia-cuda-crt, nvidia-nvvm, nvidia-cuda-cccl): no registry here? Install a CUDA $major toolkit (nvcc) or set CUDA_HOME"
        rm -rf "$tk" && mv "$tk.tmp" "$tk"
    fi
    # torch's CUDA headers (runtime, cuBLAS, cuSPARSE, ... which ATen includes) and libraries
    local d f
    for d in include lib; do
        mkdir -p "$home/$d"
        for f in "$site/nvidia/cu$major/$d"/*; do
            [[ -e "$home/$d/$(basename "$f")" ]] || ln -s "$f" "$home/$d/"
        done
    done
    # the linker wants the unversioned name
    [[ -e "$home/lib/libcudart.so" ]] \
        || ln -s "$(basename "$(ls "$home"/lib/libcudart.so.* | head -1)")" "$home/lib/libcudart.so"
    echo "$home"
}

# torch_cuda_headers PYTHON CUDA_VERSION: the CUDA library headers torch's wheel brought
# (site-packages/nvidia/cuXX/include: cuBLAS, cuSPARSE, cuSOLVER, ..., which ATen's CUDA
# headers include and a minimal toolkit lacks), or nothing.
torch_cuda_headers() {
    local site
    site="$("$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    [[ -d "$site/nvidia/cu${2%%.*}/include" ]] && echo "$site/nvidia/cu${2%%.*}/include" || true
}

# select_toolkit PYTHON CUDA_VERSION: CUDA_HOME to build with (see MMCNV2_CUDA_TOOLKIT).
select_toolkit() {
    local choice="${MMCNV2_CUDA_TOOLKIT:-auto}" home=""
    case "$choice" in
        auto|machine) home="$(machine_toolkit "$2")" ;;
        registry) ;;
        *) die "MMCNV2_CUDA_TOOLKIT must be one of auto, machine, registry; got '$choice'" ;;
    esac
    if [[ -z "$home" && "$choice" == machine ]]; then
        die "MMCNV2_CUDA_TOOLKIT=machine: no nvcc of CUDA ${2%%.*}.x found (CUDA_HOME, PATH, /usr/local/cuda); torch was built with CUDA $2"
    fi
    if [[ -z "$home" ]]; then
        home="$(registry_toolkit "$1" "$2")" || exit 1
        log "CUDA toolkit: assembled from the registry's CUDA $2 wheels ($home)"
    else
        log "CUDA toolkit: this machine's, $home (nvcc $(nvcc_release "$home/bin/nvcc"))"
    fi
    echo "$home"
}

# patch_setup SRC DEVICE: -std=c++20 for the host compiler (and nvcc for cuda), checked.
patch_setup() {
    local setup="$1/setup.py" cxx="extra_compile_args\['cxx'\] = \['-std=c++17'\]"
    local nvcc="extra_compile_args\['nvcc'\] += \['-std=c++17'\]"
    grep -q "$cxx" "$setup" || die "mmcv's setup.py has changed: no \"extra_compile_args['cxx'] = ['-std=c++17']\" to patch in $setup"
    sed -i "s/$cxx/extra_compile_args['cxx'] = ['-std=c++20']/" "$setup"
    grep -q "extra_compile_args\['cxx'\] = \['-std=c++20'\]" "$setup" || die "patching the cxx standard in $setup failed"
    if [[ "$2" == cuda ]]; then
        grep -q "$nvcc" "$setup" || die "mmcv's setup.py has changed: no \"extra_compile_args['nvcc'] += ['-std=c++17']\" to patch in $setup"
        sed -i "s/$nvcc/extra_compile_args['nvcc'] += ['-std=c++20']/" "$setup"
        grep -q "extra_compile_args\['nvcc'\] += \['-std=c++20'\]" "$setup" || die "patching the nvcc standard in $setup failed"
    fi
}

# unpack_sdist DIR: the mmcv sources, from MMCV_SDIST or downloaded; prints the source folder.
unpack_sdist() {
    local dir="$1" sdist="${MMCV_SDIST:-}"
    if [[ -z "$sdist" ]]; then
        "$PYTHON" -m pip download -q --no-deps --no-build-isolation --no-binary :all: \
            "mmcv==$MMCV_VERSION" -d "$dir" >&2 \
            || die "could not download the mmcv $MMCV_VERSION sdist; without a registry, set MMCV_SDIST=/path/to/mmcv-$MMCV_VERSION.tar.gz"
        sdist="$dir/mmcv-$MMCV_VERSION.tar.gz"
    fi
    [[ -f "$sdist" ]] || die "MMCV_SDIST: no such file: $sdist"
    tar -xzf "$sdist" -C "$dir"
    [[ -d "$dir/mmcv-$MMCV_VERSION" ]] || die "$sdist does not hold mmcv-$MMCV_VERSION/"
    echo "$dir/mmcv-$MMCV_VERSION"
}

main() {
    [[ $# -eq 2 ]] || usage "$@"
    PYTHON="$1"
    local device="$2"
    [[ "$device" == cpu || "$device" == cuda ]] || die "device must be cpu or cuda, got '$device'"
    "$PYTHON" -c 'import torch' 2>/dev/null || die "$PYTHON has no torch: install torch first, mmcv compiles against it"
    local torch_version pytag cuda key arch="" home=""
    read -r torch_version pytag cuda <<<"$(torch_info "$PYTHON") "
    key="mmcv-$MMCV_VERSION-torch$torch_version-$pytag-cpu"
    if [[ "$device" == cuda ]]; then
        [[ -n "$cuda" ]] || die "device cuda: this torch ($torch_version) is a CPU-only build; install a CUDA build of torch"
        arch="${TORCH_CUDA_ARCH_LIST:-$(gpu_arch_list "$PYTHON")}"
        [[ -n "$arch" ]] || die "device cuda: torch sees no GPU here, so name the GPU architectures to compile for, e.g. TORCH_CUDA_ARCH_LIST=9.0 (H100/H200) or '8.0;8.6;9.0' (cross-compiling)"
        key="mmcv-$MMCV_VERSION-torch$torch_version-$pytag-cu${cuda//./}-$(arch_tag "$arch")"
    fi
    local wheels="$CACHE/wheels/$key"
    if ls "$wheels"/mmcv-*.whl >/dev/null 2>&1; then
        log "cached: $wheels"
        ls "$wheels"/mmcv-*.whl | head -1
        return
    fi
    local headers=""
    if [[ "$device" == cuda ]]; then
        home="$(select_toolkit "$PYTHON" "$cuda")" || exit 1
        headers="$(torch_cuda_headers "$PYTHON" "$cuda")"
    fi
    local jobs="${MAX_JOBS:-$(nproc)}" src start
    log "building mmcv $MMCV_VERSION for torch $torch_version, $pytag, $device${arch:+ (CUDA $cuda, archs $arch)} with $jobs jobs: $key"
    BUILD="$(mktemp -d)"
    trap 'rm -rf "$BUILD"' EXIT
    src="$(unpack_sdist "$BUILD")"
    patch_setup "$src" "$device"
    "$PYTHON" -c 'import ninja, psutil' 2>/dev/null || "$PYTHON" -m pip install -q ninja psutil >&2 \
        || die "mmcv's build needs ninja and psutil in $PYTHON's environment"
    mkdir -p "$wheels.tmp"
    start=$SECONDS
    if [[ "$device" == cpu ]]; then
        (cd "$src" && CUDA_VISIBLE_DEVICES='' MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="$jobs" \
            "$PYTHON" -m pip wheel --no-build-isolation --no-deps -w "$wheels.tmp" .) >&2
    else
        local cpath="${CPATH:-}"
        [[ -z "$headers" ]] || cpath="$headers${cpath:+:$cpath}"
        (cd "$src" && env ${cpath:+"CPATH=$cpath"} CUDA_HOME="$home" PATH="$home/bin:$PATH" \
            TORCH_CUDA_ARCH_LIST="$arch" \
            MMCV_WITH_OPS=1 FORCE_CUDA=1 MAX_JOBS="$jobs" \
            "$PYTHON" -m pip wheel --no-build-isolation --no-deps -w "$wheels.tmp" .) >&2
    fi
    rm -rf "$wheels" && mv "$wheels.tmp" "$wheels"
    log "built in $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s: $wheels"
    ls "$wheels"/mmcv-*.whl | head -1
}

main "$@"
