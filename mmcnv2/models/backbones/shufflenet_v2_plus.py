"""ShuffleNetV2+ (megvii's one-shot NAS ShuffleNetV2) and SFR-ShuffleNetV2+.

ShuffleNetV2+ follows megvii's reference (ShuffleNet-Series). SFR-ShuffleNetV2+
adds sparse feature reactivation to every stride-1 unit, as the CondenseNetV2
paper describes (appendix Tables 10/11); it is a reconstruction from the
paper, since no code for it was released.
"""
from typing import Sequence

from ...registry import register
from .base import ShuffleBackbone

_KINDS = ('3x3', '3x3', 'xception', '5x5', '5x5', '5x5', '3x3', '3x3', '7x7', '3x3', '7x7',
          '5x5', '5x5', '3x3', '7x7', '3x3', '7x7', '5x5', 'xception', '7x7')
_HS, _RELU = dict(type='HSwish'), dict(type='ReLU')


def _plus(widths):
    return dict(widths=widths, units=(4, 4, 8, 4), kinds=_KINDS, acts=(_RELU, _HS, _HS, _HS),
                se=(False, False, True, True))


@register('MODELS')
class ShuffleNetV2Plus(ShuffleBackbone):
    """ShuffleNetV2+ backbone (megvii), Small or Medium.

    Stem conv 3x3/2 (16, h-swish), four stages of 4/4/8/4 units of NAS-chosen
    kinds (3x3, 5x5, 7x7, Xception), ReLU in stage 1 and h-swish after, SE in
    stages 3-4, and a 1x1 conv to 1280 (h-swish). Outputs: 0-3 = the stages
    (strides 4, 8, 16, 32), 4 = the 1x1 conv (stride 32).

    FLOPs convention: megvii counts (and the paper prints) multiply-adds
    without the h-swish / h-sigmoid, so :attr:`paper_uncounted` lists them for
    ``tools/get_flops.py``.

    Args:
        arch (str | dict): ``'small'``, ``'medium'`` or a dict.
        in_channels, out_indices, frozen_stages, deploy, conv_cfg, norm_cfg,
        norm_eval, with_cp, init_cfg: As :class:`SFRShuffleNetV2`.

    Example:
        >>> import torch
        >>> model = ShuffleNetV2Plus('small', out_indices=(0, 1, 2, 3)).eval()
        >>> [o.shape[1] for o in model(torch.randn(1, 3, 224, 224))]
        [36, 104, 208, 416]
    """

    stem_channels = 16
    stem_act = _HS
    stem_maxpool = False
    last_channels = 1280
    paper_uncounted = ('Hardswish', 'Hardsigmoid')
    arch_settings = {'small': _plus((36, 104, 208, 416)), 'medium': _plus((48, 128, 256, 512))}

    def __init__(self, arch='small', in_channels=3, out_indices: Sequence[int] = (4, ),
                 frozen_stages=-1, deploy=False, conv_cfg=None, norm_cfg=dict(type='BN'),
                 norm_eval=False, with_cp=False, init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, deploy, conv_cfg,
                         norm_cfg, norm_eval, with_cp, init_cfg)


@register('MODELS')
class SFRShuffleNetV2Plus(ShuffleNetV2Plus):
    """SFR-ShuffleNetV2+ backbone (a reconstruction from the paper), Small or Medium.

    :class:`ShuffleNetV2Plus` with a 3x3 sparse feature reactivation
    (``G = S = c/2``; Small's stage 4 uses 208, the paper's printed 213 cannot
    divide the 208 channels it acts on) in every stride-1 unit.

    Example:
        >>> import torch
        >>> model = SFRShuffleNetV2Plus('medium').eval()
        >>> model(torch.randn(1, 3, 224, 224))[0].shape
        torch.Size([1, 1280, 7, 7])
    """

    with_sfr = True
