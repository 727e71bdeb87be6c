"""Helpers of the GPU tests: the repository root, input sizes by device, and the error
measure of their comparisons."""
import os.path as osp

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def image_size(device: torch.device, cuda: int, cpu: int) -> int:
    """Input side: ``cuda`` on a GPU, ``cpu`` (small) when the tests run on the CPU."""
    return cuda if device.type == 'cuda' else cpu


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest absolute difference relative to the largest magnitude of ``ref``."""
    return float((out.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-12))
