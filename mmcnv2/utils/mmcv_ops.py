"""Whether the installed mmcv can run its compiled ops where a model runs.

mmdet's detectors call mmcv's compiled operators on the model's device: ``nms`` and
``RoIAlign`` in every detector, ``sigmoid_focal_loss`` in RetinaNet's loss. An mmcv built
with CPU ops only (what a build on a machine without a GPU gives), or for other GPU
architectures, fails there deep inside the first iteration with an unhelpful error.
:func:`check_mmcv_ops` says so up front, with the command that rebuilds mmcv.
"""
from typing import Optional, Union

import torch

#: How to get an mmcv with CUDA ops (the set-up scripts of this repository).
REBUILD_HINT = (
    'Rebuild mmcv with CUDA ops for this GPU: in an mmcnv2 checkout run '
    '`MMCNV2_DEVICE=cuda make env`; for another environment, '
    '`bash tools/build_mmcv.sh "$(which python)" cuda` builds the wheel (its path is the '
    'last line it prints), then `pip install --force-reinstall --no-deps <wheel>`. '
    "To run on the CPU instead, hide the GPU: CUDA_VISIBLE_DEVICES=''.")


class MMCVOpsError(RuntimeError):
    """The installed mmcv cannot run its compiled ops on the device a run uses."""


def _gpu_name(device: torch.device) -> str:
    index = device.index if device.index is not None else torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    return f'{torch.cuda.get_device_name(index)}, compute capability {major}.{minor}'


def _run_nms(device: torch.device):
    """One call of mmcv's compiled ``nms`` on ``device`` (raises where it cannot run)."""
    from mmcv.ops import nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]], device=device)
    nms(boxes, torch.tensor([0.9, 0.8], device=device), 0.5)
    torch.cuda.synchronize(device)


def mmcv_ops_problem(device: Union[str, torch.device]) -> Optional[str]:
    """Why mmcv's compiled ops cannot run on ``device``, or None when they can.

    Nothing is checked for CPU devices (mmcv's CPU ops need no GPU). For a CUDA
    device: mmcv must have compiled ops, built with CUDA, for this GPU's
    architecture (one ``nms`` call on the device checks the last).

    Args:
        device (str | torch.device): Where the model runs.

    Returns:
        str | None: The problem, in words.

    Example:
        >>> mmcv_ops_problem('cpu') is None
        True
    """
    device = torch.device(device)
    if device.type != 'cuda':
        return None
    import mmcv
    where = f'mmcv {mmcv.__version__} ({mmcv.__path__[0]})'
    try:
        from mmcv.ops import get_compiling_cuda_version
        cuda = get_compiling_cuda_version()
    except (ImportError, ModuleNotFoundError, AttributeError) as error:
        return f'{where} has no compiled ops ({error}): it is mmcv-lite or was built without torch'
    if cuda == 'not available':
        return (f'{where} was built with CPU ops only, but this run is on the GPU '
                f'({_gpu_name(device)}), where detectors call its compiled nms, RoIAlign '
                'and sigmoid_focal_loss')
    try:
        _run_nms(device)
    except RuntimeError as error:
        return (f'{where} has CUDA {cuda} ops that do not run on this GPU '
                f'({_gpu_name(device)}): {str(error).splitlines()[0]}; build it for this '
                'architecture (TORCH_CUDA_ARCH_LIST)')
    return None


def check_mmcv_ops(device: Union[str, torch.device]):
    """Raise :class:`MMCVOpsError` with the rebuild command unless mmcv's compiled ops
    run on ``device`` (see :func:`mmcv_ops_problem`).

    Example:
        >>> check_mmcv_ops('cpu')  # nothing to check on the CPU
    """
    problem = mmcv_ops_problem(device)
    if problem is not None:
        raise MMCVOpsError(f'{problem}. {REBUILD_HINT}')
