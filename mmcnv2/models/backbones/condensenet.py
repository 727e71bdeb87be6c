"""CondenseNet (Huang et al., "CondenseNet: An Efficient DenseNet using Learned
Group Convolutions", CVPR 2018): the baselines of the CondenseNetV2 paper."""
import copy
from typing import Sequence

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp

from ..layers import LearnedGroupConv, PreActConv
from .base import DenseBackbone


class CondenseDenseLayer(nn.Module):
    """CondenseNet's dense layer: ``cat([x, GConv3x3(LGC1x1(x))])``, ReLU only."""

    def __init__(self, in_channels, growth_rate, bottleneck, condense_factor, groups, conv_cfg,
                 norm_cfg, deploy=False, with_cp=False):
        super().__init__()
        act_cfg = dict(type='ReLU', inplace=True)
        self.with_cp = with_cp
        self.conv1 = LearnedGroupConv(in_channels, bottleneck * growth_rate, condense_factor,
                                      groups, norm_cfg=norm_cfg, act_cfg=act_cfg, deploy=deploy)
        self.conv2 = PreActConv(bottleneck * growth_rate, growth_rate, 3, groups, conv_cfg,
                                norm_cfg, act_cfg)

    def _forward(self, x):
        return torch.cat([x, self.conv2(self.conv1(x))], dim=1)

    def forward(self, x):
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


class CondenseNet(DenseBackbone):
    """CondenseNet backbone: learned group convolutions, no feature reactivation.

    The ImageNet baselines of the CondenseNetV2 paper's appendix (Tables
    12/13): ``a``, ``b``, ``c`` share CondenseNetV2's depths and growth rates
    (A: 2-4-6-8-4 here, as in the appendix), with ``C = G`` and plain ReLU.
    Stage ``i`` is dense block ``i`` (strides 2, 4, 8, 16, 32); the last stage
    ends with ``BN -> ReLU``.

    Args:
        arch (str | dict): ``'a'``, ``'b'``, ``'c'`` or a dict with the keys
            of :attr:`arch_settings`.
        in_channels (int): Input image channels. Defaults to 3.
        out_indices (Sequence[int]): Stages to output. Defaults to the last.
        frozen_stages (int): Freeze the stem (``>= 0``) and the first
            ``frozen_stages`` stages; -1 freezes nothing. Defaults to -1.
        deploy (bool): Build condensed (deploy-form) LGC layers directly.
        conv_cfg (dict, optional): Config of the plain convolutions.
        norm_cfg (dict): Norm config. Defaults to ``dict(type='BN')``.
        norm_eval (bool): Keep norm layers in eval mode when training.
        with_cp (bool): Gradient checkpointing per dense layer.
        init_cfg (dict, optional): Init config (None: kaiming fan-out, BN 1/0;
            ``Pretrained`` loads strictly, as for CondenseNetV2).

    Example:
        >>> import torch
        >>> model = CondenseNet('a', out_indices=(3, 4)).eval()
        >>> [tuple(o.shape) for o in model(torch.randn(1, 3, 224, 224))]
        [(1, 416, 14, 14), (1, 672, 7, 7)]
    """

    arch_settings = {
        'a': dict(depths=(2, 4, 6, 8, 4), growth_rates=(8, 8, 16, 32, 64), condense_factor=8,
                  groups=8, bottleneck=4, stem_stride=2),
        'b': dict(depths=(2, 4, 6, 8, 6), growth_rates=(6, 12, 24, 48, 96), condense_factor=6,
                  groups=6, bottleneck=4, stem_stride=2),
        'c': dict(depths=(4, 6, 8, 10, 8), growth_rates=(8, 16, 32, 64, 128), condense_factor=8,
                  groups=8, bottleneck=4, stem_stride=2),
    }

    def __init__(self,
                 arch='a',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (-1, ),
                 frozen_stages: int = -1,
                 deploy: bool = False,
                 conv_cfg=None,
                 norm_cfg=dict(type='BN'),
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self._build_args = dict(arch=copy.deepcopy(arch), in_channels=in_channels,
                                out_indices=out_indices, frozen_stages=frozen_stages,
                                conv_cfg=conv_cfg, norm_cfg=norm_cfg, norm_eval=norm_eval,
                                with_cp=with_cp)
        self.arch = arch = self._parse_arch(arch)
        self._set_conventions(len(arch['depths']), out_indices, frozen_stages, norm_eval, with_cp,
                              deploy)

        def make_layer(i, channels, growth):
            return CondenseDenseLayer(channels, growth, arch['bottleneck'],
                                      arch['condense_factor'], arch['groups'], conv_cfg, norm_cfg,
                                      deploy, with_cp)

        self._build_dense(make_layer, in_channels, conv_cfg, norm_cfg)
