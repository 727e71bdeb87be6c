import os.path as osp
import re

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config

from mmcnv2.analysis import paper_complexity
from mmcnv2.analysis.complexity import (build_deploy_model, config_complexity,
                                        config_input_shape)
from mmcnv2.models import CondenseNetV2

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# (paper Table 2/5 figure, official measure_model figure) in millions;
# the official code was run to get the second column (see README).
PAPER = {'a': ((46, 2.0), (45.87, 2.038)), 'b': ((146, 3.6), (146.47, 3.593)),
         'c': ((309, 6.1), (309.74, 6.178))}


def config(path):
    return Config.fromfile(osp.join(ROOT, path))


@pytest.mark.parametrize('arch', ['a', 'b', 'c'])
def test_flops_and_params_match_paper_and_release(arch):
    r = config_complexity(config(f'configs/imagenet/cnv2_{arch}.py'), with_mmengine=False)
    (paper_flops, paper_params), (rel_flops, rel_params) = PAPER[arch]
    flops, params = r['paper_flops'] / 1e6, r['paper_params'] / 1e6
    assert r['shape'] == (224, 224) and 'CenterCrop 224x224' in r['shape_source']
    assert flops == pytest.approx(paper_flops, rel=0.01)
    assert flops == pytest.approx(rel_flops, abs=0.01)
    # params equal the release's count; the paper prints them to one decimal
    # (C: 6.18M printed as 6.1M, see README)
    assert params == pytest.approx(rel_params, abs=0.001)
    assert params == pytest.approx(paper_params, rel=0.02)


def test_training_and_deploy_forms_count_the_same():
    a = paper_complexity(CondenseNetV2('a', out_indices=(4, )))
    b = paper_complexity(CondenseNetV2('a', out_indices=(4, ), deploy=True))
    assert a == pytest.approx(b)


class SharedConv(nn.Module):
    """One convolution and one ReLU run twice, on the input and on its stride-2 subsample."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.conv(x)), self.act(self.conv(x[:, :, ::2, ::2]))


def test_a_module_run_twice_counts_its_flops_twice_and_its_params_once():
    flops, params = paper_complexity(SharedConv(), (2, 8, 6))
    # conv: Cin * Cout * 3 * 3 per output pixel, on 8x6 and on 4x3; ReLU: one per element
    assert flops == 2 * 3 * 9 * (8 * 6 + 4 * 3) + 3 * (8 * 6 + 4 * 3)
    assert params == 3 * 2 * 9 + 3  # weight and bias, once


def test_detector_params_are_its_parameters_and_its_size_the_test_size():
    """RetinaNet's head runs once per FPN level: its parameters count once (before, five
    times), so the paper's params of a deploy-form detector (all of whose modules run) are
    its unique parameters. The default input is the test pipeline's Resize scale 1333x800,
    (H, W) = (800, 1333), padded to a multiple of 32 as the data preprocessor does."""
    cfg = config('configs/retinanet_cnv2_a.py')
    model = build_deploy_model(cfg)
    small = config_complexity(cfg, (128, 160), with_mmengine=False)
    assert small['paper_params'] == sum(p.numel() for p in model.parameters())
    assert small['shape'] == (128, 160) and small['shape_source'] == 'given'
    # the backbone alone at 224x224, whatever the detector's input
    backbone_flops, backbone_params = paper_complexity(CondenseNetV2('a', deploy=True))
    assert small['backbone_flops'] == pytest.approx(backbone_flops)
    assert small['backbone_params'] == sum(p.numel() for p in model.backbone.parameters())
    assert config_input_shape(cfg) == (
        (800, 1344), "the test pipeline's Resize scale 1333x800 (keep_ratio: real images are "
                     'at most this size), padded to a multiple of 32 as the data preprocessor does')


@pytest.mark.parametrize('path,shape', [('configs/imagenet/cnv2_a.py', (224, 224)),
                                        ('configs/imagenet/sfr_shufflenetv2_1.0x.py', (224, 224)),
                                        ('configs/cifar/cnv2_110_c10.py', (32, 32)),
                                        ('configs/cifar/cnv2_146_c100.py', (32, 32)),
                                        ('configs/faster_rcnn_cnv2_b.py', (800, 1344)),
                                        ('configs/demo/retinanet_cnv2_trees.py', (416, 416))])
def test_default_input_is_the_configs_test_size(path, shape):
    assert config_input_shape(config(path))[0] == shape


def test_a_config_without_a_test_size_says_so():
    shape, source = config_input_shape(Config(dict(model=dict(type='X'))))
    assert shape is None and 'no Resize or CenterCrop' in source
    arch = dict(depths=(1, ), growth_rates=(8, ), condense_factor=4, sparse_factor=4, groups=4,
                bottleneck=4, stem_stride=4, hswish_from=1, se_from=1)
    cfg = Config(dict(model=dict(type='ImageClassifier',
                                 backbone=dict(type='CondenseNetV2', arch=arch),
                                 neck=dict(type='GlobalAveragePooling'),
                                 head=dict(type='LinearClsHead', num_classes=10,
                                           in_channels=24)),
                      default_scope='mmpretrain'))
    r = config_complexity(cfg, with_mmengine=False)
    assert r['shape'] == (224, 224) and r['shape_source'].endswith(': 224x224')


def cifar_flops_params(arch, num_classes=10, size=32):
    """The paper's count of a CIFAR CondenseNetV2 in deploy form, by hand from its arch:
    convolutions Cin*Cout*k*k*H*W/groups, ReLU one per element, average pooling k*k per
    output, global pooling one per input, Linear weight.numel(); BN parameters count."""
    C, S, G, b = arch['condense_factor'], arch['sparse_factor'], arch['groups'], arch['bottleneck']
    k0 = arch['growth_rates'][0]
    channels, hw = 2 * k0, size * size
    flops, params = 3 * channels * 9 * hw, 3 * channels * 9          # stem
    for i, (depth, k) in enumerate(zip(arch['depths'], arch['growth_rates'])):
        if i:
            hw //= 4
            flops += 4 * channels * hw                               # 2x2 average pool
        for _ in range(depth):
            mid, kept = b * k, channels * G // C
            flops += kept * hw + kept * (mid // G) * hw              # LGC: ReLU, group conv
            params += 2 * kept + mid * (kept // G)
            flops += mid * hw + mid * (k // G) * 9 * hw              # 3x3: ReLU, group conv
            params += 2 * mid + k * (mid // G) * 9
            react = channels * G // S                                # SFR: ReLU, group conv
            flops += k * hw + react * (k // G) * hw
            params += 2 * k + react * (k // G)
            channels += k
    flops += channels * hw + channels * hw + channels * num_classes  # ReLU, pool, fc
    params += 2 * channels + channels * num_classes + num_classes
    return flops, params


def readme_rows():
    """The rows of README's FLOPs/params table: name -> (FLOPs M, params M) as printed."""
    with open(osp.join(ROOT, 'README.md')) as f:
        text = f.read()
    rows = {}
    for line in text.splitlines():
        m = re.match(r'^(\S.*?)\s+[\d/]+\s+([\d.]+)M\s+\S+\s+\S+\s+([\d.]+)M', line)
        if m:
            rows[m.group(1)] = (float(m.group(2)), float(m.group(3)))
    return rows


@pytest.mark.parametrize('name,path,arch', [
    ('CondenseNetV2-110 (C-10)', 'configs/cifar/cnv2_110_c10.py', 'cifar110'),
    ('CondenseNetV2-146 (C-10)', 'configs/cifar/cnv2_146_c10.py', 'cifar146')])
def test_cifar_rows_of_readme_are_what_the_count_gives(name, path, arch):
    """README prints 58.95M / 0.464M and 93.55M / 0.751M for the CIFAR models (the paper:
    41M / 0.48M and 62M / 0.78M; the depths are our reading): the count of the config
    gives them, and so does a count by hand from the arch."""
    printed_flops, printed_params = readme_rows()[name]
    r = config_complexity(config(path), with_mmengine=False)
    assert r['shape'] == (32, 32)
    by_hand = cifar_flops_params(CondenseNetV2.arch_settings[arch])
    assert (r['paper_flops'], r['paper_params']) == by_hand
    assert round(r['paper_flops'] / 1e6, 2) == printed_flops
    assert round(r['paper_params'] / 1e6, 3) == printed_params


def test_two_stage_detector_counts_its_roi_head_on_every_proposal():
    """Faster R-CNN: its RoI head runs on the RPN's max_per_img (1000) proposals at test
    time; each costs its fully connected layers' weights and its ReLUs (RoIAlign is not
    counted), so 1000 proposals cost 990 x that more than 10."""
    from mmcnv2.analysis.complexity import _two_stage_forward

    cfg = config('configs/faster_rcnn_cnv2_a.py')
    r = config_complexity(cfg, (96, 128), with_mmengine=False)
    assert r['proposals'] == 1000
    model = build_deploy_model(cfg)
    assert r['paper_params'] == sum(p.numel() for p in model.parameters())
    ten, _ = paper_complexity(model, (3, 96, 128), _two_stage_forward(10))
    head = model.roi_head.bbox_head
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 4  # two shared fcs, classifier, box regression
    per_roi = sum(m.weight.numel() for m in linears) + 2 * head.fc_out_channels  # + 2 ReLUs
    assert r['paper_flops'] - ten == pytest.approx(990 * per_roi, rel=1e-9)
