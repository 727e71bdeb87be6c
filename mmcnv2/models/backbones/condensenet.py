"""CondenseNet (Huang et al., "CondenseNet: An Efficient DenseNet using Learned
Group Convolutions", CVPR 2018): the baselines of the CondenseNetV2 paper."""
from ...registry import register
from ..layers import CondenseDenseLayer
from .base import DenseBackbone


@register('MODELS')
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

    def _make_layer(self, stage, in_channels, growth, conv_cfg, norm_cfg):
        arch = self.arch
        return CondenseDenseLayer(in_channels, growth, arch['bottleneck'],
                                  arch['condense_factor'], arch['groups'], conv_cfg, norm_cfg,
                                  self.deploy, self.with_cp)
