"""SFR-ShuffleNetV2: ShuffleNetV2 with sparse feature reactivation.

A reconstruction from the CondenseNetV2 paper (Sec. 3.3, Fig. 5, appendix
Tables 8/9): no code for it was released. The design (an SFR in every
stride-1 unit, 3x3, groups = sparse factor = half the stage width, the
increment added to the kept half) is the one that reproduces every FLOPs
figure of the paper; README (Notes: what is reconstructed or assumed) says
how this layout was chosen.
"""
import copy
from typing import Sequence

import torch.nn as nn
from mmcv.cnn import ConvModule

from ..layers import UNIT_KINDS, ShuffleUnit, check_positive_ints
from .base import SparseBackbone


class ShuffleNetFamily(SparseBackbone):
    """Shared body of the ShuffleNetV2(+) backbones: stem, stages of units, last 1x1 conv.

    Outputs, indexed by ``out_indices``: the stem (only when
    :attr:`stem_is_output`), every stage, and the last 1x1 convolution.
    Subclasses define :attr:`arch_settings` and the layout constants.
    """

    #: Whether the stem's output (after its max pool) is output 0.
    stem_is_output = False
    stem_channels = 24
    stem_act = dict(type='ReLU')
    stem_maxpool = True
    last_channels = 1024
    arch_keys = ('widths', 'units', 'kinds', 'acts', 'se')

    def __init__(self, arch, in_channels=3, out_indices=(-1, ), frozen_stages=-1, with_sfr=True,
                 deploy=False, conv_cfg=None, norm_cfg=dict(type='BN'), norm_eval=False,
                 with_cp=False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self._build_args = dict(arch=copy.deepcopy(arch), in_channels=in_channels,
                                out_indices=out_indices, frozen_stages=frozen_stages,
                                conv_cfg=conv_cfg, norm_cfg=norm_cfg, norm_eval=norm_eval,
                                with_cp=with_cp)
        if type(self).with_sfr_fixed is None:
            self._build_args['with_sfr'] = with_sfr
        check_positive_ints(in_channels=in_channels)
        self.arch = self._parse_arch(arch)
        widths, units = self.arch['widths'], self.arch['units']
        num_outputs = len(widths) + 1 + int(self.stem_is_output)
        self._set_conventions(num_outputs, out_indices, frozen_stages, norm_eval, with_cp, deploy)
        self.with_sfr = with_sfr
        args = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        self.stem = ConvModule(in_channels, self.stem_channels, 3, 2, 1, act_cfg=self.stem_act,
                               **args)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if self.stem_maxpool else nn.Identity()
        channels = self.stem_channels
        kinds = iter(self.arch['kinds'])
        self.stages = nn.ModuleList()
        out_channels = [channels] if self.stem_is_output else []
        for i, (width, n) in enumerate(zip(widths, units)):
            stage = []
            for j in range(n):
                stage.append(ShuffleUnit(channels, width, 2 if j == 0 else 1, next(kinds),
                                         self.arch['acts'][i], with_se=self.arch['se'][i],
                                         with_sfr=with_sfr, deploy=deploy, with_cp=with_cp,
                                         **args))
                channels = width
            self.stages.append(nn.Sequential(*stage))
            out_channels.append(width)
        self.conv_last = ConvModule(channels, self.last_channels, 1, act_cfg=self.arch['acts'][-1],
                                    **args)
        out_channels.append(self.last_channels)
        #: Channels of every output, indexed like ``out_indices``.
        self.out_channels = tuple(out_channels)
        self._freeze_stages()

    with_sfr_fixed = None

    def _parse_arch(self, arch):
        if isinstance(arch, str):
            if arch not in self.arch_settings:
                raise ValueError(f'arch must be one of {sorted(self.arch_settings)} or a dict, '
                                 f'got {arch!r}')
            arch = self.arch_settings[arch]
        elif not isinstance(arch, dict) or set(arch) != set(self.arch_keys):
            raise ValueError(f'arch must be one of {sorted(self.arch_settings)} or a dict with '
                             f'exactly the keys {sorted(self.arch_keys)}, got {arch!r}')
        arch = copy.deepcopy(dict(arch))
        for key in ('widths', 'units'):
            if not isinstance(arch[key], Sequence) or isinstance(arch[key], str) \
                    or not arch[key]:
                raise ValueError(f"arch['{key}'] must be a non-empty sequence of positive ints, "
                                 f'got {arch[key]!r}')
            check_positive_ints(**{f"arch['{key}'][{i}]": v for i, v in enumerate(arch[key])})
        n = len(arch['widths'])
        if not (len(arch['units']) == len(arch['acts']) == len(arch['se']) == n) or \
                len(arch['kinds']) != sum(arch['units']) or \
                any(k not in UNIT_KINDS for k in arch['kinds']):
            raise ValueError(f'inconsistent arch {arch!r}: one width/units/act/se per stage, '
                             f'one kind of {UNIT_KINDS} per unit')
        return arch

    @property
    def stage_strides(self):
        """Stride of every output relative to the input."""
        first = 4 if self.stem_maxpool else 2
        strides = [first * 2**(i + 1) for i in range(len(self.stages))]
        strides = ([first] if self.stem_is_output else []) + strides
        return tuple(strides + [strides[-1]])

    def forward(self, x):
        x = self.maxpool(self.stem(x))
        feats = [x] if self.stem_is_output else []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        feats.append(self.conv_last(x))
        return tuple(feats[i] for i in self.out_indices)

    def _frozen_modules(self):
        modules = [self.stem] + list(self.stages) + [self.conv_last]
        return modules[:self.frozen_stages + 1]


class SFRShuffleNetV2(ShuffleNetFamily):
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
    with_sfr_fixed = True
    arch_settings = {
        f'{w}x': dict(widths=widths, units=(4, 8, 4), kinds=('3x3', ) * 16,
                      acts=(dict(type='ReLU'), ) * 3, se=(False, ) * 3)
        for w, widths in (('0.5', (48, 96, 192)), ('1.0', (116, 232, 464)),
                          ('1.5', (176, 352, 704)))
    }

    def __init__(self, arch='1.0x', in_channels=3, out_indices: Sequence[int] = (4, ),
                 frozen_stages=-1, deploy=False, conv_cfg=None, norm_cfg=dict(type='BN'),
                 norm_eval=False, with_cp=False, init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, True, deploy, conv_cfg,
                         norm_cfg, norm_eval, with_cp, init_cfg)
