"""mmcnv2.ops.dense_stage_forward checks every argument before it runs: a bad one raises a
RuntimeError naming it, instead of dividing by zero (SIGFPE), returning uninitialised
channels, computing something else or treating an unknown activation as the identity."""
import copy
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmcnv2.models import CondenseNetV2, fuse_for_inference
from mmcnv2.ops import LAYER_INTS, LAYER_TENSORS, dense_stage_forward
from tests.utils import randomize_bn, requires_ops

pytestmark = requires_ops

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# one stage of 2 layers; stage 1 downsamples. dense_below=0: grouped 1x1 products (index1,
# index3 used), 10**6: dense ones (the other tensors of the argument lists)
ARCH = dict(depths=(2, 2), growth_rates=(8, 8), condense_factor=4, sparse_factor=2, groups=2,
            bottleneck=4, stem_stride=1, hswish_from=1, se_from=1)
INTS, TENSORS = LAYER_INTS, LAYER_TENSORS


def stage_arguments(dense_below):
    """``x`` and the valid arguments of fused stage 1 (downsampling, SE, h-swish), and the
    stage itself."""
    torch.manual_seed(0)
    model = CondenseNetV2(ARCH, out_indices=(0, 1), deploy=True)
    randomize_bn(model)
    fused = fuse_for_inference(model, dense_below=dense_below, backend='cpp')
    stage = fused.stages[1]
    args = [layer.extension_args() for layer in stage.layers]
    x = torch.randn(2, stage.in_channels, 10, 12)
    return x, stage, [a[0] for a in args], [a[1] for a in args]


@pytest.fixture(scope='module', params=[0, 10**6], ids=['grouped', 'dense'])
def valid(request):
    return stage_arguments(request.param)


def call(x, stage, tensors, ints, out_channels=None):
    return dense_stage_forward(x, True, stage.out_channels if out_channels is None
                               else out_channels, tensors, ints)


def test_valid_arguments_run(valid):
    x, stage, tensors, ints = valid
    with torch.no_grad():
        torch.testing.assert_close(call(x, stage, tensors, ints), stage.body(x))
    assert ints[1][INTS.index('with_se')] == 1 and ints[1][INTS.index('act2')] == 2


@pytest.mark.parametrize('delta', [8, -8, 1])
def test_out_channels_other_than_the_stages_is_an_error(valid, delta):
    x, stage, tensors, ints = valid
    with pytest.raises(RuntimeError, match=rf'out_channels must equal .*{stage.out_channels}, '
                                           rf'got {stage.out_channels + delta}'):
        call(x, stage, tensors, ints, stage.out_channels + delta)


@pytest.mark.parametrize('name,value,message', [
    ('act1', 3, r'act1 must be an activation code in \{0: identity, 1: ReLU, 2: h-swish\}, '
                'got 3'),
    ('act2', -1, 'act2 must be an activation code'),
    ('act3', 7, 'act3 must be an activation code'),
    ('dense', 2, 'dense must be 0 or 1, got 2'),
    ('with_se', 5, 'with_se must be 0 or 1'),
    ('kernel3x3', 1, 'kernel3x3 needs groups == 8'),
    ('pad_h', -1, r'pad_h must be >= 0'),
    ('pad_w', 0, r"w2's kernel 3x3 and padding 1, 0 must keep the map size"),
    ('groups', 3, r'groups \(3\) must divide mid \(32\)'),
    ('sfr_groups', 3, r'sfr_groups \(3\) must divide growth \(8\)'),
    ('groups3x3', 3, r'groups3x3 \(3\) must divide mid'),
    ('growth', 16, 'w2 must have shape'),
    ('mid', 64, 'w1 must have shape'),
])
def test_bad_ints_are_errors_naming_them(valid, name, value, message):
    x, stage, tensors, ints = valid
    bad = copy.deepcopy(ints)
    bad[1][INTS.index(name)] = value
    with pytest.raises(RuntimeError, match=rf'dense_stage_forward: layer 1: {message}'):
        call(x, stage, tensors, bad)


def _replace(tensors, layer, name, value):
    bad = [list(t) for t in tensors]
    bad[layer][TENSORS.index(name)] = value
    return bad


def test_bad_tensors_are_errors_naming_them(valid):
    x, stage, tensors, ints = valid
    layer = tensors[0]
    dense = ints[0][INTS.index('dense')]
    w1 = layer[TENSORS.index('w1')]
    cases = [('w1', w1[:-1], 'w1 must have shape'),
             ('s3', layer[TENSORS.index('s3')].double(), 's3 must be Float like the input, '
                                                         'got Double'),
             ('b3', layer[TENSORS.index('b3')].to('meta'), "b3 must be on the input's device"),
             ('w2', layer[TENSORS.index('w2')][..., 0], 'w2 must be 4-D'),
             ('w3', layer[TENSORS.index('w3')].t() if dense else layer[TENSORS.index('w3')][1:],
              'w3 must have shape'),
             ('se_fc1_t', torch.empty(0), 'se_fc1_t must have shape')]
    if not dense:
        index1, index3 = layer[TENSORS.index('index1')], layer[TENSORS.index('index3')]
        cases += [('index1', index1.int(), 'index1 must be Long'),
                  ('index1', index1[:-1], r'index1 must hold a positive multiple of groups'),
                  ('index3', index3[:0], 'index3 must hold a positive multiple of sfr_groups')]
    for name, value, message in cases:
        with pytest.raises(RuntimeError, match=rf'dense_stage_forward: layer 0: {message}'):
            call(x, stage, _replace(tensors, 0, name, value), ints)


def test_bad_input_and_list_lengths_are_errors(valid):
    x, stage, tensors, ints = valid
    with pytest.raises(RuntimeError, match=r'x must be 4-D \(N, C, H, W\), got 3-D'):
        call(x[0], stage, tensors, ints)
    with pytest.raises(RuntimeError, match='x must be a floating point tensor, got Long'):
        call(x.long(), stage, tensors, ints)
    with pytest.raises(RuntimeError, match='2 tensor lists for 1 int lists'):
        call(x, stage, tensors, ints[:1])
    with pytest.raises(RuntimeError, match='layer 0 has 15 tensors and 14 ints, expected 16 and '
                                           '14'):
        call(x, stage, [tensors[0][:-1], tensors[1]], ints)


_ZERO_GROUPS = '''
import importlib.util, sys, torch
spec = importlib.util.spec_from_file_location('mmcnv2._ext', sys.argv[1])
ext = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ext)
x, out_channels, tensors, ints = torch.load(sys.argv[2], weights_only=True)
for position in [int(p) for p in sys.argv[3:]]:
    bad = [list(v) for v in ints]
    bad[0][position] = 0
    try:
        ext.dense_stage_forward(x, True, out_channels, tensors, bad)
        print('no error')
    except RuntimeError as e:
        print(str(e).splitlines()[0])
'''


def test_zero_group_counts_are_errors_not_a_crash(valid, tmp_path):
    """Before the checks, a group count of 0 divided by zero in C++: SIGFPE killed the
    process. Run in a subprocess, so that a regression cannot kill pytest."""
    import mmcnv2.ops

    x, stage, tensors, ints = valid
    args = tmp_path / 'args.pth'
    torch.save((x, stage.out_channels, tensors, ints), args)
    names = ('groups', 'sfr_groups', 'groups3x3', 'mid', 'growth')
    proc = subprocess.run(
        [sys.executable, '-c', _ZERO_GROUPS, mmcnv2.ops._ext.__file__, str(args),
         *[str(INTS.index(n)) for n in names]], cwd=ROOT, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stdout.splitlines()
    assert len(lines) == len(names)
    for name, line in zip(names, lines):
        assert f'dense_stage_forward: layer 0: {name} must be > 0, got 0' in line, line
