"""CondenseNetV2 (Yang et al., "CondenseNet V2: Sparse Feature Reactivation
for Deep Networks", CVPR 2021), exact to the authors' release."""
from ...registry import register
from ..layers import SFRDenseLayer
from .base import DenseBackbone


@register('MODELS')
class CondenseNetV2(DenseBackbone):
    """CondenseNetV2 backbone.

    A stem convolution followed by dense blocks of :class:`~mmcnv2.models.layers.SFRDenseLayer`
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

    def _make_layer(self, stage, in_channels, growth, conv_cfg, norm_cfg):
        arch = self.arch
        act_cfg = dict(type='HSwish') if stage >= arch['hswish_from'] else dict(type='ReLU')
        return SFRDenseLayer(in_channels, growth, arch['bottleneck'], arch['condense_factor'],
                             arch['sparse_factor'], arch['groups'], stage >= arch['se_from'],
                             conv_cfg, norm_cfg, act_cfg, deploy=self.deploy,
                             with_cp=self.with_cp)
