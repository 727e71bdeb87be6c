import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmcnv2.analysis.complexity import config_complexity
from mmcnv2.models.backbones.condensenet import CondenseNet
from mmcnv2.models.heads.condensenet_head import CondenseNetClsHead
from tests.utils import assert_params_match, randomize_bn

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

CHANNELS = {'a': (32, 64, 160, 416, 672), 'b': (24, 72, 216, 600, 1176),
            'c': (48, 144, 400, 1040, 2064)}


@pytest.mark.parametrize('arch', ['a', 'b', 'c'])
def test_stages_and_deploy_equivalence(arch):
    torch.manual_seed(0)
    model = CondenseNet(arch, out_indices=(0, 1, 2, 3, 4))
    model.init_weights()
    randomize_bn(model)
    assert model.out_channels == CHANNELS[arch]
    for _, m in model.sparse_layers():
        m.sparsify(0.5)
    model.eval()
    x = torch.randn(1, 3, 225, 301)
    with torch.no_grad():
        ref = model(x)
        assert [tuple(o.shape[2:]) for o in ref] == [(113, 151), (56, 75), (28, 37), (14, 18),
                                                     (7, 9)]
        model.switch_to_deploy()
        out = model(x)
    for r, o in zip(ref, out):
        torch.testing.assert_close(o, r, rtol=1e-5, atol=1e-5 * float(r.abs().max()))
    assert not any(True for n, _ in model.named_modules() if n.endswith('sfr'))


# paper Table 12/13 (appendix): FLOPs / params of the ImageNet baselines
PAPER = {'a': (56, 0.9), 'b': (132, 2.1), 'c': (274, 2.9)}


@pytest.mark.parametrize('arch', ['a', 'b', 'c'])
def test_flops_match_the_paper(arch):
    cfg = Config.fromfile(osp.join(ROOT, f'configs/imagenet/condensenet_{arch}.py'))
    r = config_complexity(cfg, with_mmengine=False)
    flops, params = PAPER[arch]
    assert r['paper_flops'] / 1e6 == pytest.approx(flops, rel=0.015)
    assert_params_match(r['paper_params'] / 1e6, params)


def test_head_keep_ratio_one_is_exact_and_half_keeps_largest_columns():
    head = CondenseNetClsHead(10, 8)
    x = torch.randn(3, 8)
    ref = head((x, ))
    head.switch_to_deploy()
    torch.testing.assert_close(head((x, )), ref)
    head = CondenseNetClsHead(4, 6, keep_ratio=0.5)
    with torch.no_grad():
        head.fc.weight.copy_(torch.tensor([[1., 0, 5, 0, 2, 0]] * 4))
    head.switch_to_deploy()
    assert head.index.tolist() == [0, 2, 4]
    with pytest.raises(ValueError, match='keep_ratio'):
        CondenseNetClsHead(4, 6, keep_ratio=0)
