"""Fixtures shared by the tool tests: exports that several files check, made once."""
import contextlib
import io
import os.path as osp

import pytest
import torch

from tests.tool_utils import ROOT, tool
from tests.utils import trained_checkpoint

DIGITS = osp.join(ROOT, 'configs/demo/cnv2_digits.py')


@pytest.fixture(scope='session')
def digits_export(tmp_path_factory):
    """The digits demo's CondenseNetV2 (random weights and BN statistics, fully sparsified)
    through ``tools/export_onnx.py --shape 32 32 --runtime onnxruntime openvino``: the
    file's path and what the tool printed (its run must succeed). One export for the
    runtime and quantization tests."""
    torch.manual_seed(0)  # a session fixture is made before the autouse per-test seed
    folder = tmp_path_factory.mktemp('digits')
    ckpt = trained_checkpoint(DIGITS, folder / 'digits.pth')
    out = str(folder / 'digits.onnx')
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = tool('export_onnx.py', DIGITS, ckpt, out, '--shape', 32, 32,
                    '--runtime', 'onnxruntime', 'openvino')
    assert code is None, printed.getvalue()[-2000:]
    return out, printed.getvalue()
