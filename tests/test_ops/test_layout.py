"""The C++ loop's argument layout has one declaration (mmcnv2/ops/dense_stage_layout.py): the
fused layers pack by its names, the compiled extension reports the layout it was built with,
and an extension built from another layout is refused as stale instead of being called with
misplaced arguments."""
import importlib
import os.path as osp
import re

import pytest
import torch

import mmcnv2.ops
from mmcnv2.models import CondenseNetV2, fuse_for_inference
from mmcnv2.ops import dense_stage_layout
from mmcnv2.ops.dense_stage_layout import ABI_VERSION, LAYER_INTS, LAYER_TENSORS, cpp_header
from tests.utils import requires_ops

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ARCH = dict(depths=(2, ), growth_rates=(8, ), condense_factor=4, sparse_factor=2, groups=2,
            bottleneck=4, stem_stride=1, hswish_from=0, se_from=0)


def test_header_declares_every_name_in_order():
    header = cpp_header()
    assert f'#define MMCNV2_ABI_VERSION {ABI_VERSION}' in header
    for macro, names in (('MMCNV2_LAYER_TENSORS', LAYER_TENSORS),
                         ('MMCNV2_LAYER_INTS', LAYER_INTS)):
        line = next(line for line in header.splitlines() if line.startswith(f'#define {macro}'))
        assert re.findall(r'X\((\w+)\)', line) == list(names)
    assert len(set(LAYER_TENSORS)) == len(LAYER_TENSORS) == 16
    assert len(set(LAYER_INTS)) == len(LAYER_INTS) == 14


def test_the_built_header_is_the_generated_one():
    """setup.py writes the header the C++ sources include from the declaration."""
    header = osp.join(ROOT, 'mmcnv2', 'ops', 'csrc', 'dense_stage_layout.h')
    if not osp.exists(header):
        pytest.skip('the extension has not been built in this checkout')
    with open(header) as f:
        assert f.read() == cpp_header()


def test_fused_layers_pack_their_arguments_by_the_declared_names():
    torch.manual_seed(0)
    model = CondenseNetV2(ARCH, deploy=True).eval()
    with torch.no_grad():
        fused = fuse_for_inference(model, backend='python')
    layer = fused.stages[0].layers[1]
    tensors, ints = layer.extension_args()
    assert [t is getattr(layer, n) for t, n in zip(tensors, LAYER_TENSORS)] == [True] * 16
    assert ints == [int(getattr(layer, n)) for n in LAYER_INTS]
    assert ints[LAYER_INTS.index('pad_h')] == layer.padding[0] == 1
    assert ints[LAYER_INTS.index('with_se')] == 1


@requires_ops
def test_the_extension_reports_the_declared_layout():
    ext = mmcnv2.ops._ext
    assert ext.ABI_VERSION == ABI_VERSION
    assert tuple(ext.LAYER_TENSORS) == LAYER_TENSORS
    assert tuple(ext.LAYER_INTS) == LAYER_INTS


@requires_ops
def test_an_extension_of_another_layout_is_refused_as_stale(monkeypatch):
    swapped = (LAYER_INTS[1], LAYER_INTS[0]) + LAYER_INTS[2:]
    monkeypatch.setattr(dense_stage_layout, 'LAYER_INTS', swapped)
    try:
        ops = importlib.reload(mmcnv2.ops)
        assert ops._ext is None
        assert 'mmcnv2._ext is stale' in ops.extension_error()
        with pytest.raises(RuntimeError, match='is stale'):
            ops.dense_stage_forward(torch.zeros(1, 1, 1, 1), False, 1, [], [])
    finally:
        monkeypatch.undo()
        importlib.reload(mmcnv2.ops)
    assert mmcnv2.ops.extension_error() is None
