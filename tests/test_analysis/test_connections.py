"""Figures 6/7: connection strength from a training-form checkpoint, checked by hand."""
import math
import os.path as osp
import runpy
import subprocess
import sys

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from mmcnv2.analysis.connections import (connection_figure, connection_strength,
                                         not_produced, plot_connections)
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
    # rows: feature blocks 0..3 (block 4, the last layer's output, is read by no layer here)
    assert s1['per_group'].shape == (4, 16) and s1['per_layer'].shape == (4, 4)
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
    # ... and exactly those are the cells not_produced names, per layer and per group
    produced_later = [[j > layer for layer in range(4)] for j in range(4)]
    assert not_produced((4, 4)).tolist() == produced_later
    assert not_produced((4, 16), 4).tolist() == [[j > c // 4 for c in range(16)]
                                                 for j in range(4)]
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

    One epoch of 320 images (10 iterations) is enough: the hook prunes fully by mid-epoch,
    so the conversion (which refuses unfinished layers) and the figure see the final masks.
    """
    from mmcnv2_tools.demo import run_demo
    result = run_demo('cls', str(tmp_path / 'demo'), root=ROOT,
                      cfg_options={'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1,
                                   'train_dataloader.dataset.indices': 320})
    assert result['connections'] == str(tmp_path / 'demo' / 'connections.png')
    assert mpimg.imread(result['connections']).shape[0] > 500
    m = connection_strength(result['checkpoint'])
    assert sorted(m) == [0, 1, 2] and all(v['groups'] == 4 for v in m.values())
    # the sparsification curves of that run, next to the connection figure
    from mmcnv2.analysis.curves import load_sparsification_curves
    assert result['curves'] == str(tmp_path / 'demo' / 'curves.png')
    assert mpimg.imread(result['curves']).shape[0] > 300
    curves = load_sparsification_curves(result['work_dir'])
    density = curves['density_lgc']
    assert density == sorted(density, reverse=True) and density[-1] == 0.25  # C = 4


def test_figure_scales_ticks_and_legend(tmp_path):
    """One colour scale from 0 per row of panels (Fig. 7: 0..1), integer ticks (a 1-layer
    block too), the not-produced triangle hatched apart from pruned (white) cells."""
    from matplotlib.patches import Rectangle
    torch.manual_seed(0)
    arch = dict(ARCH, depths=(1, 4))  # block 1 has a single layer
    model = CondenseNetV2(arch)
    checkpoint(model, tmp_path / 'v2.pth')
    c0 = connection_strength(checkpoint_state(model))[1]['in_channels']
    # layer 3 of block 2 reads nothing of feature block 1 (layer 0's 8 channels): pruned
    model.stages[1].layers[3].conv1.mask[:, c0:c0 + 8] = False
    models = {'CondenseNetV2': connection_strength(checkpoint_state(model))}
    assert math.isnan(models['CondenseNetV2'][1]['per_layer'][1, 3])
    fig = connection_figure(models)
    (g0, g1), (l0, l1) = fig.axes[0:2], fig.axes[2:4]
    per_group_max = max(float(np.nanmax(m['per_group'])) for m in models['CondenseNetV2'].values())
    for ax in (g0, g1):
        assert ax.images[0].get_clim() == pytest.approx((0, per_group_max))
    for ax in (l0, l1):
        assert ax.images[0].get_clim() == (0, 1)
    bars = fig.axes[4:]
    assert len(bars) == 2  # one colour bar per row of panels, labelled
    assert bars[0].get_ylabel() == 'mean |w| of surviving weights'
    assert bars[1].get_ylabel() == "mean |w| / the layer's largest"
    # ticks: integers only; the 1-layer block has one layer and one row ('in')
    assert [t.get_text() for t in l0.get_xticklabels()] == ['0']
    assert [t.get_text() for t in l0.get_yticklabels()] == ['in']
    assert list(l0.get_xticks()) == [0]
    assert [t.get_text() for t in l1.get_xticklabels()] == ['0', '1', '2', '3']
    assert [t.get_text() for t in l1.get_yticklabels()] == ['in', '0', '1', '2']
    assert list(g1.get_xticks()) == [1.5, 5.5, 9.5, 13.5]  # the middle of each layer's groups
    # hatched: exactly the not-produced cells (3 + 2 + 1 of the 4x4 block); none for 1 layer

    def hatched_cells(ax):
        cells = set()
        for p in ax.patches:
            if isinstance(p, Rectangle) and p.get_hatch():
                x0, y0 = p.get_x() + 0.5, p.get_y() + 0.5
                cells |= {(int(y0 + dy), int(x0 + dx)) for dy in range(int(p.get_height()))
                          for dx in range(int(p.get_width()))}
        return cells
    assert hatched_cells(l0) == set()
    expect = {(j, c) for j in range(4) for c in range(4) if j > c}
    assert hatched_cells(l1) == expect
    assert hatched_cells(g1) == {(j, c) for j in range(4) for c in range(16) if j > c // 4}
    # the pruned cell (row 1, layer 3) is inside the produced part, so it shows white
    assert (2, 3) not in expect
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[0].startswith('pruned') and labels[1].startswith('not produced')


@pytest.mark.parametrize('content', ['missing', 'empty', 'random', 'truncated'])
def test_cli_says_what_is_wrong_with_a_checkpoint(tmp_path, monkeypatch, capsys, content):
    torch.manual_seed(0)
    good = checkpoint(CondenseNetV2(ARCH), tmp_path / 'good.pth')
    path = tmp_path / 'bad.pth'
    if content == 'empty':
        path.write_bytes(b'')
    elif content == 'random':
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif content == 'truncated':
        data = open(good, 'rb').read()
        path.write_bytes(data[:len(data) // 2])
    monkeypatch.setattr(sys, 'argv', ['visualize_connections.py', str(path), '--out',
                                      str(tmp_path / 'fig.png')])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(osp.join(ROOT, 'tools/visualize_connections.py'), run_name='__main__')
    message = str(exit_info.value.code)
    assert message.startswith('error: ') and str(path) in message, message
    expected = {'missing': 'not found', 'empty': 'empty (0 bytes)',
                'random': 'could not be read as a PyTorch checkpoint',
                'truncated': 'could not be read as a PyTorch checkpoint'}[content]
    assert expected in message
    assert not osp.exists(tmp_path / 'fig.png')
