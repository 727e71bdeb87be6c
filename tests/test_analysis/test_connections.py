"""Figures 6/7: connection strength from a training-form checkpoint, checked by hand."""
import math
import os.path as osp
import subprocess
import sys

import matplotlib.image as mpimg
import pytest
import torch

from mmcnv2.analysis.connections import connection_strength, plot_connections
from mmcnv2.models import CondenseNet, CondenseNetV2

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ARCH = dict(depths=(3, 4), growth_rates=(8, 8), condense_factor=4, sparse_factor=4, groups=4,
            bottleneck=4, stem_stride=1, hswish_from=3, se_from=3)


def checkpoint(model, path):
    for _, m in model.sparse_layers():
        m.sparsify(1.0)
    state = {'backbone.' + k: v for k, v in model.state_dict().items()}
    torch.save(dict(state_dict=state, meta={}), path)
    return str(path)


def test_matrices_by_hand(tmp_path):
    torch.manual_seed(0)
    model = CondenseNetV2(ARCH)
    ckpt = checkpoint(model, tmp_path / 'v2.pth')
    m = connection_strength(ckpt)
    assert sorted(m) == [0, 1]
    s1 = m[1]
    assert s1['groups'] == 4 and s1['growth'] == 8 and s1['in_channels'] == 40
    assert s1['per_group'].shape == (5, 16) and s1['per_layer'].shape == (5, 4)
    # hand computation: layer 2 of stage 1, feature block 1 (channels 40..47), group 3
    lgc = model.stages[1].layers[2].conv1
    w, mask = lgc.conv.weight.detach()[:, :, 0, 0].abs(), lgc.mask
    rows = torch.arange(3, w.shape[0], 4)
    sub_w, sub_m = w[rows][:, 40:48], mask[rows][:, 40:48]
    expect = float(sub_w[sub_m].mean()) if sub_m.any() else math.nan
    got = s1['per_group'][1, 2 * 4 + 3]
    assert (math.isnan(expect) and math.isnan(got)) or got == pytest.approx(expect, rel=1e-6)
    # each column of Fig. 7 peaks at 1; blocks a layer cannot read yet are NaN
    for layer in range(4):
        col = s1['per_layer'][:layer + 1, layer]
        assert max(v for v in col if not math.isnan(v)) == pytest.approx(1.0)
        assert all(math.isnan(v) for v in s1['per_layer'][layer + 1:, layer])
    # a group that kept nothing of a block is NaN (white): prune block 1 of layer 3, group 0
    lgc3 = model.stages[1].layers[3].conv1
    lgc3.mask[0::4, 40:48] = False
    m2 = connection_strength(checkpoint_state(model))
    assert math.isnan(m2[1]['per_group'][1, 3 * 4 + 0])


def checkpoint_state(model):
    return {'state_dict': {'backbone.' + k: v for k, v in model.state_dict().items()}}


def test_figure_with_condensenet_beside_and_cli(tmp_path):
    torch.manual_seed(0)
    v2 = checkpoint(CondenseNetV2(ARCH), tmp_path / 'v2.pth')
    arch1 = {k: ARCH[k] for k in ('depths', 'growth_rates', 'condense_factor', 'groups',
                                  'bottleneck', 'stem_stride')}
    v1 = checkpoint(CondenseNet(arch1), tmp_path / 'v1.pth')
    out = tmp_path / 'fig' / 'connections.png'
    models = plot_connections(v2, str(out), condensenet_checkpoint=v1)
    assert set(models) == {'CondenseNetV2', 'CondenseNet'}
    image = mpimg.imread(out)
    assert image.ndim == 3 and image.shape[0] > 500 and image.shape[1] > 500
    proc = subprocess.run([sys.executable, 'tools/visualize_connections.py', v2, '--out',
                           str(tmp_path / 'cli.png'), '--stages', '1'], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert osp.getsize(tmp_path / 'cli.png') > 10000
    with pytest.raises(ValueError, match=r'stages must be among \[0, 1\]'):
        plot_connections(v2, str(tmp_path / 'x.png'), stages=[5])


def test_refuses_deploy_form_and_other_models(tmp_path):
    model = CondenseNetV2(ARCH)
    for _, m in model.sparse_layers():
        m.sparsify(1.0)
    model.switch_to_deploy()
    with pytest.raises(ValueError, match='training-form checkpoint'):
        connection_strength({'state_dict': model.state_dict()})
    with pytest.raises(ValueError, match='expected a CondenseNet or CondenseNetV2 checkpoint'):
        connection_strength({'state_dict': {'backbone.conv.weight': torch.zeros(1)}})


def test_classification_demo_writes_the_figure(tmp_path):
    """The demo's own path (train -> both forms -> figure), on a 1-epoch schedule.

    One epoch is enough: the hook prunes fully by mid-epoch, so the conversion
    (which refuses unfinished layers) and the figure see the final masks.
    """
    from mmcnv2.apis.demo import run_demo
    result = run_demo('cls', str(tmp_path / 'demo'), root=ROOT,
                      cfg_options={'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1})
    assert result['connections'] == str(tmp_path / 'demo' / 'connections.png')
    assert mpimg.imread(result['connections']).shape[0] > 500
    m = connection_strength(result['checkpoint'])
    assert sorted(m) == [0, 1, 2] and all(v['groups'] == 4 for v in m.values())
