"""SFR-ShuffleNetV2: ShuffleNetV2 with sparse feature reactivation.

A reconstruction from the CondenseNetV2 paper (Sec. 3.3, Fig. 5, appendix
Tables 8/9): no code for it was released. The design (an SFR in every
stride-1 unit, 3x3, groups = sparse factor = half the stage width, the
increment added to the kept half) is the one that reproduces every FLOPs
figure of the paper; README (Notes: what is reconstructed or assumed) says
how this layout was chosen.
"""
from typing import Sequence

from ...registry import register
from .base import ShuffleBackbone


@register('MODELS')
class SFRShuffleNetV2(ShuffleBackbone):
    """SFR-ShuffleNetV2 backbone (a reconstruction from the paper).

    megvii's ShuffleNetV2 (stem conv 3x3/2 + max pool, stages of 4/8/4 units,
    1x1 conv to 1024) with sparse feature reactivation in every stride-1 unit
    (3x3, ``G = S = c/2``; paper Table 9). Outputs: 0 = after the max pool
    (stride 4), 1-3 = the stages (strides 8, 16, 32), 4 = the 1x1 conv
    (stride 32); so ``out_indices=(0, 1, 2, 3)`` feeds an FPN at strides
    4-32.

    Args:
        arch (str | dict): ``'0.5x'``, ``'1.0x'``, ``'1.5x'`` or a dict with the
            keys of :attr:`arch_settings` entries.
        in_channels (int): Input channels. Defaults to 3.
        out_indices (Sequence[int]): Outputs to return. Defaults to (4, ).
        frozen_stages (int): Freeze the stem (``>= 0``) and the first
            ``frozen_stages`` stages. Defaults to -1.
        deploy (bool): Build the SFRs in deploy form.
        conv_cfg, norm_cfg, norm_eval, with_cp, init_cfg: As in OpenMMLab backbones.

    Example:
        >>> import torch
        >>> model = SFRShuffleNetV2('1.0x', out_indices=(0, 1, 2, 3)).eval()
        >>> [tuple(o.shape) for o in model(torch.randn(1, 3, 224, 224))]
        [(1, 24, 56, 56), (1, 116, 28, 28), (1, 232, 14, 14), (1, 464, 7, 7)]
    """

    stem_is_output = True
    with_sfr = True
    arch_settings = {
        f'{w}x': dict(widths=widths, units=(4, 8, 4), kinds=('3x3', ) * 16,
                      acts=(dict(type='ReLU'), ) * 3, se=(False, ) * 3)
        for w, widths in (('0.5', (48, 96, 192)), ('1.0', (116, 232, 464)),
                          ('1.5', (176, 352, 704)))
    }

    def __init__(self, arch='1.0x', in_channels=3, out_indices: Sequence[int] = (4, ),
                 frozen_stages=-1, deploy=False, conv_cfg=None, norm_cfg=dict(type='BN'),
                 norm_eval=False, with_cp=False, init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, deploy, conv_cfg,
                         norm_cfg, norm_eval, with_cp, init_cfg)
