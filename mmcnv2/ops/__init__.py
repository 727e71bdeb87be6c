"""Compiled operators (``mmcnv2._ext``, built by ``setup.py`` unless ``MMCNV2_WITH_OPS=0``).

They are optional: without them every model still runs, the fused dense stage in
Python (see :class:`mmcnv2.models.layers.FusedSFRDenseStage`).
"""
from typing import List, Optional

import torch

#: The argument layout this Python code passes (``ABI_VERSION`` in the C++ source).
ABI_VERSION = 1

try:
    from mmcnv2 import _ext
    _EXT_ERROR: Optional[str] = None
    if getattr(_ext, 'ABI_VERSION', None) != ABI_VERSION:  # built from older sources
        _EXT_ERROR = (f'mmcnv2._ext is stale (ABI {getattr(_ext, "ABI_VERSION", None)}, '
                      f'expected {ABI_VERSION}): rebuild it')
        _ext = None
except ImportError as error:  # not built: pip install with MMCNV2_WITH_OPS=0, or no compiler
    _ext = None
    _EXT_ERROR = str(error)


def extension_error() -> Optional[str]:
    """Why the compiled operators cannot be used, or None when they can."""
    return _EXT_ERROR


def dense_stage_forward(x: torch.Tensor, downsample: bool, out_channels: int,
                        tensors: List[List[torch.Tensor]], ints: List[List[int]]) -> torch.Tensor:
    """The loop of a fused dense stage in C++ (``csrc/fused_dense_stage.cpp``).

    Args:
        x (Tensor): The stage input, ``(N, C, H, W)``.
        downsample (bool): Whether the stage starts with a 2x2 average pool.
        out_channels (int): Channels of the output.
        tensors (list[list[Tensor]]): Per layer, what
            ``_FusedSFRLayer.extension_args`` returns first.
        ints (list[list[int]]): Per layer, what it returns second.

    Returns:
        Tensor: The stage output, bit-identical to the Python loop's.
    """
    if _ext is None:
        raise RuntimeError(f'mmcnv2 was installed without its compiled operators '
                           f'({_EXT_ERROR}); reinstall with a C++ compiler: '
                           f'pip install --no-build-isolation -e .')
    return _ext.dense_stage_forward(x, downsample, out_channels, tensors, ints)


__all__ = ['dense_stage_forward', 'extension_error']
