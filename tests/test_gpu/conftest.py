"""Fixtures of the GPU tests.

They are collected everywhere and run on ``MMCNV2_TEST_DEVICE`` (default ``cuda``); where
no GPU is visible they are skipped with that reason. ``MMCNV2_TEST_DEVICE=cpu`` runs the
same test bodies on the CPU (fp16 autocast excepted), with smaller inputs, to check their
logic on a machine without a GPU; the default suite does not. Helpers the tests import are
in ``tests/test_gpu/utils.py``.
"""
import os

import pytest
import torch

DEVICES = ('cuda', 'cpu')


@pytest.fixture(scope='session')
def device() -> torch.device:
    """The device the GPU tests run on."""
    name = os.environ.get('MMCNV2_TEST_DEVICE', 'cuda')
    if name not in DEVICES:
        pytest.fail(f'MMCNV2_TEST_DEVICE must be one of {DEVICES}, got {name!r}')
    if name == 'cuda' and not torch.cuda.is_available():
        pytest.skip('no CUDA GPU visible (MMCNV2_TEST_DEVICE=cpu runs these tests on the CPU)')
    return torch.device(name)


@pytest.fixture(scope='session')
def det_device(device) -> torch.device:
    """``device``, where mmcv's compiled ops run: a CPU-only mmcv on a GPU fails here
    with the command that rebuilds it (an environment error, not a skip)."""
    from mmcnv2.utils import mmcv_ops_problem
    problem = mmcv_ops_problem(device)
    if problem is not None:
        pytest.fail(problem)
    return device


@pytest.fixture(scope='session')
def runner_device(device) -> torch.device:
    """``device`` for tests that let mmengine's Runner choose (it takes a visible GPU)."""
    if device.type == 'cpu' and torch.cuda.is_available():
        pytest.skip("mmengine's Runner takes the visible GPU; hide it to test the CPU")
    return device


@pytest.fixture
def exact_fp32():
    """Full fp32 products while a test runs (TF32 would round convolutions and matmuls
    to 10-bit mantissas on Ampere and newer, beyond the forms' 1e-4 tolerance)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
