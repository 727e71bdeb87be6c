"""CondenseNetV2 (Yang et al., "CondenseNet V2: Sparse Feature Reactivation
for Deep Networks", CVPR 2021), exact to the authors' release."""
import copy
from typing import Sequence

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp

from ..layers import LearnedGroupConv, PreActConv, SparseFeatureReactivation, SqueezeExcitation
from .base import DenseBackbone


class SFRDenseLayer(nn.Module):
    """The dense layer of CondenseNetV2 (paper Fig. 4, right).

    ``new = SE(GConv3x3(LGC1x1(x)))``; ``out = cat([SFR(new) + x, new])``: the
    reactivated old features first, the ``growth_rate`` new ones last.
    """

    def __init__(self, in_channels, growth_rate, bottleneck, condense_factor, sparse_factor,
                 groups, with_se, conv_cfg, norm_cfg, act_cfg, deploy=False, with_cp=False):
        super().__init__()
        mid = bottleneck * growth_rate
        self.with_cp = with_cp
        self.conv1 = LearnedGroupConv(in_channels, mid, condense_factor, groups,
                                      norm_cfg=norm_cfg, act_cfg=act_cfg, deploy=deploy)
        self.conv2 = PreActConv(mid, growth_rate, 3, groups, conv_cfg, norm_cfg, act_cfg)
        self.se = SqueezeExcitation(growth_rate, reduction=1) if with_se else None
        self.sfr = SparseFeatureReactivation(growth_rate, in_channels, sparse_factor, groups,
                                             norm_cfg=norm_cfg, act_cfg=act_cfg, deploy=deploy)

    def _forward(self, x):
        new = self.conv2(self.conv1(x))
        if self.se is not None:
            new = self.se(new)
        return torch.cat([self.sfr(new, x), new], dim=1)

    def forward(self, x):
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


class CondenseNetV2(DenseBackbone):
    """CondenseNetV2 backbone.

    A stem convolution followed by dense blocks of :class:`SFRDenseLayer`
    (learned group convolution, group convolution, optional SE, sparse
    feature reactivation) separated by 2x2 average pools. Stage ``i`` is dense
    block ``i``; the ImageNet archs have five stages at strides 2, 4, 8, 16,
    32, the CIFAR archs three at strides 1, 2, 4. The last stage ends with the
    release's ``BN -> ReLU``. Module and buffer names follow the release so
    that :mod:`mmcnv2.checkpoint.official` maps its checkpoints one to one.

    The ImageNet archs are Table 2 of the paper. The CIFAR archs are a
    reading of Sec. 4.3 (no depths are published): three blocks of ``d``
    layers with growth 8-16-32, ``C = S = G = 4``, no SE / h-swish, and
    ``d = 12`` (``cifar110``) / ``16`` (``cifar146``) so that a dense layer
    counts as three convolutions: depth ``= 9d + 2``.

    Args:
        arch (str | dict): ``'a'``, ``'b'``, ``'c'``, ``'cifar110'``,
            ``'cifar146'`` or a dict with the keys of :attr:`arch_settings`.
        in_channels (int): Input image channels. Defaults to 3.
        out_indices (Sequence[int]): Stages to output. Defaults to the last.
        frozen_stages (int): Freeze the stem (``>= 0``) and the first
            ``frozen_stages`` stages; -1 freezes nothing. Defaults to -1.
        deploy (bool): Build condensed (deploy-form) sparse layers directly.
        conv_cfg (dict, optional): Config of the plain convolutions.
        norm_cfg (dict): Norm config. Defaults to ``dict(type='BN')``.
        norm_eval (bool): Keep norm layers in eval mode when training.
        with_cp (bool): Gradient checkpointing per dense layer.
        init_cfg (dict | list[dict], optional): Initialization config; when
            None the release's init is used (kaiming fan-out convs, BN 1/0).
            ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``
            loads strictly: every backbone weight must be found, and a
            fully sparse training-form checkpoint is condensed on the fly for
            a ``deploy=True`` backbone.

    Example:
        >>> import torch
        >>> from mmcnv2.models import CondenseNetV2
        >>> model = CondenseNetV2('a', out_indices=(1, 2, 3, 4)).eval()
        >>> for out in model(torch.randn(1, 3, 224, 224)):
        ...     print(tuple(out.shape))
        (1, 32, 56, 56)
        (1, 96, 28, 28)
        (1, 288, 14, 14)
        (1, 800, 7, 7)
    """

    arch_settings = {
        'a': dict(depths=(1, 1, 4, 6, 8), growth_rates=(8, 8, 16, 32, 64), condense_factor=8,
                  sparse_factor=8, groups=8, bottleneck=4, stem_stride=2, hswish_from=2,
                  se_from=3),
        'b': dict(depths=(2, 4, 6, 8, 6), growth_rates=(6, 12, 24, 48, 96), condense_factor=6,
                  sparse_factor=6, groups=6, bottleneck=4, stem_stride=2, hswish_from=2,
                  se_from=3),
        'c': dict(depths=(4, 6, 8, 10, 8), growth_rates=(8, 16, 32, 64, 128), condense_factor=8,
                  sparse_factor=8, groups=8, bottleneck=4, stem_stride=2, hswish_from=2,
                  se_from=3),
        'cifar110': dict(depths=(12, 12, 12), growth_rates=(8, 16, 32), condense_factor=4,
                         sparse_factor=4, groups=4, bottleneck=4, stem_stride=1, hswish_from=3,
                         se_from=3),
        'cifar146': dict(depths=(16, 16, 16), growth_rates=(8, 16, 32), condense_factor=4,
                         sparse_factor=4, groups=4, bottleneck=4, stem_stride=1, hswish_from=3,
                         se_from=3),
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
        self.arch = self._parse_arch(arch)
        arch = self.arch
        self._set_conventions(len(arch['depths']), out_indices, frozen_stages, norm_eval, with_cp,
                              deploy)

        def make_layer(i, channels, growth):
            act_cfg = dict(type='HSwish') if i >= arch['hswish_from'] else dict(type='ReLU')
            return SFRDenseLayer(channels, growth, arch['bottleneck'], arch['condense_factor'],
                                 arch['sparse_factor'], arch['groups'], i >= arch['se_from'],
                                 conv_cfg, norm_cfg, act_cfg, deploy=deploy, with_cp=with_cp)

        self._build_dense(make_layer, in_channels, conv_cfg, norm_cfg)
