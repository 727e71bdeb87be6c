"""Compiled operators (``mmcnv2._ext``, built by ``setup.py`` unless ``MMCNV2_WITH_OPS=0``).

They are optional: without them every model still runs, the fused dense stage in
Python (see :class:`mmcnv2.models.layers.FusedSFRDenseStage`).
"""
import importlib
from typing import List, Optional

import torch

from .dense_stage_layout import ABI_VERSION, LAYER_INTS, LAYER_TENSORS


def _layout_of(ext) -> tuple:
    """``(ABI_VERSION, LAYER_TENSORS, LAYER_INTS)`` a compiled extension was built with."""
    return (getattr(ext, 'ABI_VERSION', None), tuple(getattr(ext, 'LAYER_TENSORS', ())),
            tuple(getattr(ext, 'LAYER_INTS', ())))


try:  # import_module: 'from mmcnv2 import _ext' would blame a circular import when absent
    _ext = importlib.import_module('mmcnv2._ext')
    _EXT_ERROR: Optional[str] = None
    if _layout_of(_ext) != (ABI_VERSION, LAYER_TENSORS, LAYER_INTS):  # built from other sources
        _EXT_ERROR = (f'mmcnv2._ext is stale (ABI {getattr(_ext, "ABI_VERSION", None)} and '
                      f'its argument layout, expected ABI {ABI_VERSION} and the layout of '
                      'mmcnv2/ops/dense_stage_layout.py): rebuild it')
        _ext = None
except ImportError as error:  # not built: pip install with MMCNV2_WITH_OPS=0, or no compiler
    _ext = None
    _EXT_ERROR = str(error)


def extension_error() -> Optional[str]:
    """Why the compiled operators cannot be used, or None when they can."""
    return _EXT_ERROR


def dense_stage_forward(x: torch.Tensor, downsample: bool, out_channels: int,
                        tensors: List[List[torch.Tensor]], ints: List[List[int]]) -> torch.Tensor:
    """The loop of a fused dense stage in C++ (``csrc/dense_stage.cpp``).

    Args:
        x (Tensor): The stage input, ``(N, C, H, W)``.
        downsample (bool): Whether the stage starts with a 2x2 average pool.
        out_channels (int): Channels of the output.
        tensors (list[list[Tensor]]): Per layer, the tensors named by
            :data:`LAYER_TENSORS`, in that order.
        ints (list[list[int]]): Per layer, the ints named by
            :data:`LAYER_INTS`, in that order.

    Returns:
        Tensor: The stage output (the Python loop's, up to the float rounding of
        :func:`grouped_conv3x3_g8` where a layer uses it).

    Raises:
        RuntimeError: naming the argument, before anything runs, if one does
            not fit: ``x`` not a 4-D floating point tensor; list lengths; a
            flag not 0/1, an activation code outside {0, 1, 2}, a group count
            or size not positive or not dividing what it splits; a tensor of
            the wrong shape, dtype (``x``'s; indices int64) or device;
            ``out_channels`` other than ``x``'s channels plus every growth.
    """
    return _extension().dense_stage_forward(x, downsample, out_channels, tensors, ints)


def grouped_conv3x3_g8(y: torch.Tensor, weight: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """3x3 group convolution (stride 1, padding 1) with 8 groups as the lanes of a vector.

    For 8 groups of few channels (oneDNN's grouped kernels run far below peak
    there, and its dense kernel does 8x the arithmetic). Float32, CPU; AVX2
    code where the CPU has it.

    Args:
        y (Tensor): ``(N, H, W, 8 * ipg)`` contiguous, channels "j-major":
            channel ``j * 8 + g`` is input ``j`` of group ``g``.
        weight (Tensor): ``(opg, 3, 3, ipg, 8)`` contiguous: element
            ``[r, dy, dx, j, g]`` is ``w[g * opg + r, j, dy, dx]`` of the
            ``(8 * opg, ipg, 3, 3)`` convolution weight ``w``.
        out (Tensor): ``(N, 8 * opg, H, W)`` with unit stride along W and W
            along H (for example a channel slice of a larger NCHW tensor);
            written in place.

    Returns:
        Tensor: ``out``.

    Raises:
        RuntimeError: naming the argument, if a dtype, device, size or stride
            does not fit, if ``out`` overlaps itself (e.g. a zero stride) or
            shares memory with ``y`` or ``weight``.

    Example:
        >>> import torch, torch.nn.functional as F
        >>> x, w = torch.randn(1, 32, 9, 9), torch.randn(16, 4, 3, 3)
        >>> y = x.view(1, 8, 4, 9, 9).permute(0, 3, 4, 2, 1).contiguous().view(1, 9, 9, 32)
        >>> kernel_w = w.view(8, 2, 4, 3, 3).permute(1, 3, 4, 2, 0).contiguous()
        >>> out = grouped_conv3x3_g8(y, kernel_w, torch.empty(1, 16, 9, 9))
        >>> torch.allclose(out, F.conv2d(x, w, padding=1, groups=8), atol=1e-5)
        True
    """
    _extension().grouped_conv3x3_g8(y, weight, out)
    return out


def _extension():
    if _ext is None:
        raise RuntimeError(f'mmcnv2 was installed without its compiled operators '
                           f'({_EXT_ERROR}); reinstall with a C++ compiler: '
                           f'pip install --no-build-isolation -e .')
    return _ext


__all__ = [
    'ABI_VERSION', 'LAYER_INTS', 'LAYER_TENSORS', 'dense_stage_forward', 'extension_error',
    'grouped_conv3x3_g8'
]
