import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch.nn.modules.batchnorm import _BatchNorm

from mmcnv2.analysis.complexity import config_complexity
from mmcnv2.models import SFRShuffleNetV2, SFRShuffleNetV2Plus, ShuffleNetV2Plus
from mmcnv2.models.layers import SparseFeatureReactivation
from tests.utils import assert_params_match, randomize_bn
from tests.runner_utils import run, tiny_cfg

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

ARCHS = [(SFRShuffleNetV2, '0.5x'), (SFRShuffleNetV2, '1.0x'), (SFRShuffleNetV2, '1.5x'),
         (ShuffleNetV2Plus, 'small'), (ShuffleNetV2Plus, 'medium'),
         (SFRShuffleNetV2Plus, 'small'), (SFRShuffleNetV2Plus, 'medium')]
IDS = [f'{c.__name__}-{a}' for c, a in ARCHS]
CHANNELS = {'0.5x': (24, 48, 96, 192, 1024), '1.0x': (24, 116, 232, 464, 1024),
            '1.5x': (24, 176, 352, 704, 1024), 'small': (36, 104, 208, 416, 1280),
            'medium': (48, 128, 256, 512, 1280)}


@pytest.mark.parametrize('cls,arch', ARCHS, ids=IDS)
def test_every_output_shape_and_stride(cls, arch):
    model = cls(arch, out_indices=(0, 1, 2, 3, 4)).eval()
    assert model.out_channels == CHANNELS[arch]
    assert model.stage_strides == (4, 8, 16, 32, 32)
    with torch.no_grad():
        for h, w in ((224, 224), (225, 301)):
            outs = model(torch.randn(1, 3, h, w))
            assert [o.shape[1] for o in outs] == list(CHANNELS[arch])
            for o, s in zip(outs, model.stage_strides):
                assert o.shape[2:] == (-(-h // s), -(-w // s)), (o.shape, s)
    sfrs = [m for m in model.modules() if isinstance(m, SparseFeatureReactivation)]
    if cls is ShuffleNetV2Plus:
        assert not sfrs
    else:  # one 3x3 SFR with G = S = c/2 in every stride-1 unit
        units = sum(len(s) - 1 for s in model.stages)
        assert len(sfrs) == units
        assert all(m.kernel_size == 3 and m.groups == m.factor == m.in_channels for m in sfrs)


@pytest.mark.parametrize('cls,arch', [a for a in ARCHS if a[0] is not ShuffleNetV2Plus],
                         ids=[i for i, a in zip(IDS, ARCHS) if a[0] is not ShuffleNetV2Plus])
def test_deploy_equals_training_form(cls, arch):
    torch.manual_seed(0)
    model = cls(arch, out_indices=(0, 1, 2, 3, 4))
    model.init_weights()
    randomize_bn(model)
    for _, m in model.sparse_layers():
        m.sparsify(0.5)
        # each input channel reactivates exactly one old channel
        assert (m.mask.sum(0) == 1).all()
    model.eval()
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        ref = model(x)
        model.switch_to_deploy()
        out = model(x)
    for r, o in zip(ref, out):
        torch.testing.assert_close(o, r, rtol=1e-5, atol=1e-5 * float(r.abs().max()))
    built = cls(arch, out_indices=(0, 1, 2, 3, 4), deploy=True).eval()
    built.load_state_dict(model.state_dict())
    with torch.no_grad():
        for o, b in zip(out, built(x)):
            torch.testing.assert_close(b, o, rtol=0, atol=0)


def test_arguments_and_conventions():
    with pytest.raises(ValueError, match=r"\['0.5x', '1.0x', '1.5x'\]"):
        SFRShuffleNetV2('2.0x')
    with pytest.raises(ValueError, match=r"\['medium', 'small'\]"):
        ShuffleNetV2Plus('large')
    with pytest.raises(ValueError, match=r'out_indices.*\[-5, 4\]'):
        SFRShuffleNetV2('0.5x', out_indices=(5, ))
    with pytest.raises(ValueError, match=r'frozen_stages.*\[-1, 5\]'):
        SFRShuffleNetV2Plus('small', frozen_stages=7)
    model = SFRShuffleNetV2('0.5x', frozen_stages=2, norm_eval=True)
    assert model.train() is model
    for p in list(model.stem.parameters()) + list(model.stages[1].parameters()):
        assert not p.requires_grad
    assert all(p.requires_grad for p in model.stages[2].parameters())
    assert all(not m.training for m in model.modules() if isinstance(m, _BatchNorm))


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmdet'])
def test_registry(scope):
    import importlib
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        for name in ('SFRShuffleNetV2', 'SFRShuffleNetV2Plus', 'ShuffleNetV2Plus'):
            assert type(registry.build(dict(type=name))).__name__ == name


PAPER = {'sfr_shufflenetv2_0.5x': (43, 1.4), 'sfr_shufflenetv2_1.0x': (150, 2.3),
         'sfr_shufflenetv2_1.5x': (306, 3.5), 'sfr_shufflenetv2plus_small': (161, 5.2),
         'sfr_shufflenetv2plus_medium': (229, 5.7), 'shufflenetv2plus_small': (156, 5.1),
         'shufflenetv2plus_medium': (222, 5.6)}


@pytest.mark.parametrize('name', sorted(PAPER))
def test_flops_and_params_match_the_paper(name):
    cfg = Config.fromfile(osp.join(ROOT, f'configs/imagenet/{name}.py'))
    r = config_complexity(cfg, with_mmengine=False)
    flops, params = PAPER[name]
    assert r['paper_flops'] / 1e6 == pytest.approx(flops, rel=0.015)
    assert_params_match(r['paper_params'] / 1e6, params)


@pytest.mark.parametrize('backbone', [dict(type='SFRShuffleNetV2', arch='0.5x'),
                                      dict(type='SFRShuffleNetV2Plus', arch='small')])
def test_trains_under_the_hook_and_converts(tmp_path, backbone):
    cfg = tiny_cfg(tmp_path, iters=4, images=8, batch=2, checkpoint_interval=10**6)
    cfg.train_dataloader.dataset.size = 32
    cfg.model.backbone = backbone
    cfg.model.head.in_channels = 1024 if backbone['type'] == 'SFRShuffleNetV2' else 1280
    runner, _ = run(cfg, record=False)
    layers = runner.model.backbone.sparse_layers()
    assert layers and all(m.density == pytest.approx(1 / m.factor) for _, m in layers)
    runner.model.backbone.switch_to_deploy()
    assert all(m.deploy for _, m in layers)
