"""OpenMMLab backbone conventions shared by the learned-sparsity backbones."""
import copy
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule, build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm

from ..forms import check_incoming_weights
from ..layers import (UNIT_KINDS, DenseStage, ShuffleUnit, check_deployable, check_positive_ints,
                      fuse_children, make_inference_only, sparse_layers,
                      switch_children_to_deploy)
from ..pretrained import load_pretrained_backbone


def _check_non_negative_ints(**values):
    """Raise ``ValueError`` naming the first argument that is not an int >= 0."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f'{name} must be an int >= 0, got {value!r}')


def _check_out_indices(out_indices, num_outputs: int) -> tuple:
    """``out_indices`` (an int or a non-empty sequence of ints in ``[-n, n)``) as a tuple
    of indices in ``[0, n)``; ``ValueError`` otherwise."""
    if isinstance(out_indices, int):
        out_indices = (out_indices, )
    message = (f'out_indices must be a non-empty sequence of ints in [{-num_outputs}, '
               f'{num_outputs - 1}], got {out_indices!r}')
    if not isinstance(out_indices, Sequence) or isinstance(out_indices, str) or not out_indices:
        raise ValueError(message)
    indices = []
    for index in out_indices:
        if isinstance(index, bool) or not isinstance(index, int) \
                or not -num_outputs <= index < num_outputs:
            raise ValueError(message)
        indices.append(index % num_outputs)
    return tuple(indices)


class SparseBackbone(BaseModule):
    """Base of backbones holding LGC / SFR layers.

    It takes the arguments every mmcnv2 backbone shares, checks them and
    records them (for :meth:`training_form_copy`); subclasses define
    :attr:`arch_settings`, :meth:`_parse_arch`, :meth:`_num_outputs` and
    :meth:`_frozen_modules`, and build their layers after calling it.
    It provides what mmpretrain/mmdet users expect: validated ``out_indices``
    and ``frozen_stages``, ``norm_eval``, ``train()`` returning ``self``,
    strict ``Pretrained`` loading in either form, and ``switch_to_deploy()``.

    Every load of weights into the backbone is checked, whoever loads them
    (mmengine's ``load_checkpoint``/``load_from``/resume, mmdet's
    ``init_detector``, the inferencers), strict or not: weights of the other
    form (training / deploy), a checkpoint with no weights for the backbone,
    and missing, unexpected or mis-shaped keys are errors that say what to do,
    never a model left with random weights.

    Args:
        arch (str | dict): A key of :attr:`arch_settings` or a dict like its
            values.
        in_channels (int): Input image channels.
        out_indices (int | Sequence[int]): Outputs to return (negative
            indices count from the last).
        frozen_stages (int): Freeze the stem (``>= 0``) and the first
            ``frozen_stages`` stages; -1 freezes nothing.
        deploy (bool): Build condensed (deploy-form) sparse layers directly.
        conv_cfg (dict, optional): Config of the plain convolutions.
        norm_cfg (dict): Norm config.
        norm_eval (bool): Keep norm layers in eval mode when training.
        with_cp (bool): Gradient checkpointing.
        init_cfg (dict | list[dict], optional): Initialization config;
            ``Pretrained`` loads strictly (see
            :func:`mmcnv2.models.pretrained.load_pretrained_backbone`).
    """

    arch_settings: dict = {}

    def __init__(self, arch, in_channels: int = 3, out_indices=(-1, ), frozen_stages: int = -1,
                 deploy: bool = False, conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'), norm_eval: bool = False,
                 with_cp: bool = False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        #: The constructor arguments but ``deploy`` and ``init_cfg``.
        self._build_args = dict(arch=copy.deepcopy(arch), in_channels=in_channels,
                                out_indices=out_indices, frozen_stages=frozen_stages,
                                conv_cfg=conv_cfg, norm_cfg=norm_cfg, norm_eval=norm_eval,
                                with_cp=with_cp)
        check_positive_ints(in_channels=in_channels)
        self.arch = self._parse_arch(arch)
        num_outputs = self._num_outputs()
        self.out_indices = _check_out_indices(out_indices, num_outputs)
        if isinstance(frozen_stages, bool) or not isinstance(frozen_stages, int) \
                or not -1 <= frozen_stages <= num_outputs:
            raise ValueError(f'frozen_stages must be an int in [-1, {num_outputs}], '
                             f'got {frozen_stages!r}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.deploy = deploy

    def _parse_arch(self, arch) -> dict:
        """The checked copy of ``arch`` (a key of :attr:`arch_settings` or a dict)."""
        raise NotImplementedError

    def _num_outputs(self) -> int:
        """How many outputs ``out_indices`` chooses from (``self.arch`` is set)."""
        raise NotImplementedError

    def _frozen_modules(self) -> List[nn.Module]:
        """The modules ``frozen_stages`` freezes (stem first, then stages)."""
        raise NotImplementedError

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # torch and mmengine call this on every module before its children,
        # whatever the strictness of the load: see check_incoming_weights
        check_incoming_weights(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _freeze_stages(self):
        if self.frozen_stages < 0:
            return
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def sparse_layers(self):
        """``(name, layer)`` for every LGC / SFR layer."""
        return sparse_layers(self)

    def switch_to_deploy(self):
        """Condense every LGC / SFR in place (training form -> deploy form).

        Raises:
            ValueError: if any layer has not finished sparsifying; nothing is
                converted then.
        """
        check_deployable(self)
        switch_children_to_deploy(self)
        self.deploy = True

    def fuse_for_inference(self, dense_below: int, backend: str) -> nn.Module:
        """Fuse the layers that have a fused form and make the backbone
        inference-only, in place (see :func:`mmcnv2.models.fuse_for_inference`).

        Returns:
            nn.Module: ``self``.
        """
        fuse_children(self, dense_below, backend)
        return make_inference_only(self)

    def training_form_copy(self):
        """A new training-form backbone with this one's arguments (no init)."""
        return type(self)(**self._build_args, deploy=False)

    def init_weights(self):
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            # strict: a partial load is an error, and either checkpoint form
            # fits a deploy-form backbone (see load_pretrained_backbone)
            load_pretrained_backbone(self, cfg['checkpoint'], cfg.get('prefix'))
            self._is_init = True
            return
        super().init_weights()
        if self.init_cfg is None:
            self._default_init()

    def _default_init(self):
        """The release's init: kaiming fan-out convolutions, norm weight 1 / bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, (_BatchNorm, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


class DenseBackbone(SparseBackbone):
    """Base of the CondenseNet family: a stem convolution, dense stages separated by
    2x2 average pools, and ``BN -> ReLU`` after the last stage.

    Stage ``i`` is dense block ``i``. Subclasses define :attr:`arch_settings`
    (each with ``depths``, ``growth_rates`` and ``stem_stride``) and
    :meth:`_make_layer`, their dense layer.
    """

    def _parse_arch(self, arch) -> dict:
        allowed = sorted(self.arch_settings)
        if isinstance(arch, str):
            if arch.lower() not in self.arch_settings:
                raise ValueError(f'arch must be one of {allowed} or a dict, got {arch!r}')
            return copy.deepcopy(self.arch_settings[arch.lower()])
        if not isinstance(arch, dict):
            raise ValueError(f'arch must be one of {allowed} or a dict, got {type(arch).__name__}')
        required = set(next(iter(self.arch_settings.values())))
        missing, unknown = required - set(arch), set(arch) - required
        if missing or unknown:
            raise ValueError(f'a custom arch dict needs exactly the keys {sorted(required)}; '
                             f'missing {sorted(missing)}, unknown {sorted(unknown)}')
        arch = copy.deepcopy(dict(arch))
        for key in ('depths', 'growth_rates'):
            if not isinstance(arch[key], Sequence) or isinstance(arch[key], str):
                raise ValueError(f"arch['{key}'] must be a sequence of ints, got {arch[key]!r}")
        if len(arch['depths']) != len(arch['growth_rates']) or not arch['depths']:
            raise ValueError('arch depths and growth_rates must be non-empty and of equal length, '
                             f"got {arch['depths']} and {arch['growth_rates']}")
        arch['depths'], arch['growth_rates'] = tuple(arch['depths']), tuple(arch['growth_rates'])
        # a block of depth 0 passes its input through; hswish_from / se_from index the first
        # block with h-swish / SE
        depths = {f"arch['depths'][{i}]": v for i, v in enumerate(arch['depths'])}
        firsts = {f"arch['{key}']": arch[key] for key in ('hswish_from', 'se_from') if key in arch}
        _check_non_negative_ints(**depths, **firsts)
        check_positive_ints(**{f"arch['growth_rates'][{i}]": v
                               for i, v in enumerate(arch['growth_rates'])})
        check_positive_ints(**{f"arch['{key}']": arch[key] for key in sorted(arch)
                               if key not in ('depths', 'growth_rates', 'hswish_from', 'se_from')})
        return arch

    def _num_outputs(self) -> int:
        return len(self.arch['depths'])

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
        super().__init__(arch, in_channels, out_indices, frozen_stages, deploy, conv_cfg,
                         norm_cfg, norm_eval, with_cp, init_cfg)
        self._build_dense(in_channels, conv_cfg, norm_cfg)

    def _make_layer(self, stage: int, in_channels: int, growth: int, conv_cfg,
                    norm_cfg) -> nn.Module:
        """The dense layer of stage ``stage`` reading ``in_channels`` channels."""
        raise NotImplementedError

    def _build_dense(self, in_channels: int, conv_cfg, norm_cfg):
        """Build stem, stages (of :meth:`_make_layer`) and the last norm."""
        arch = self.arch
        channels = 2 * arch['growth_rates'][0]
        self.stem = build_conv_layer(conv_cfg, in_channels, channels, 3,
                                     stride=arch['stem_stride'], padding=1, bias=False)
        self.stages = nn.ModuleList()
        stage_channels = []
        for i, (depth, growth) in enumerate(zip(arch['depths'], arch['growth_rates'])):
            layers = []
            for _ in range(depth):
                layers.append(self._make_layer(i, channels, growth, conv_cfg, norm_cfg))
                channels += growth
            self.stages.append(DenseStage(layers, downsample=i > 0))
            stage_channels.append(channels)
        self.norm_last = build_norm_layer(norm_cfg, channels)[1]
        self.act_last = nn.ReLU(inplace=True)
        #: Channels of every stage's output, indexed by stage.
        self.out_channels = tuple(stage_channels)
        self._freeze_stages()

    @property
    def stage_strides(self):
        """Stride of every stage's output relative to the input."""
        s = self.arch['stem_stride']
        return tuple(s * 2**i for i in range(len(self.stages)))

    @property
    def min_input_size(self) -> int:
        """The smallest input height and width the backbone takes.

        The stem (3x3, padding 1, stride ``s``) gives ``floor((H - 1) / s) + 1``
        rows, and each of the ``n - 1`` 2x2 average pools between the ``n``
        stages halves them (rounding down), so ``H >= s * (2**(n-1) - 1) + 1``.

        Example:
            >>> from mmcnv2.models import CondenseNetV2
            >>> CondenseNetV2('a').min_input_size, CondenseNetV2('cifar110').min_input_size
            (31, 4)
        """
        return self.arch['stem_stride'] * (2**(len(self.stages) - 1) - 1) + 1

    def _check_input_size(self, x):
        # plain ints in eager mode and under torch.export with static H, W
        height, width = x.shape[-2:]
        size = self.min_input_size
        if height < size or width < size:
            raise ValueError(
                f'{type(self).__name__} needs inputs of at least {size}x{size} (stem stride '
                f"{self.arch['stem_stride']} and {len(self.stages) - 1} 2x2 average pools), got "
                f'{height}x{width}')

    def forward(self, x):
        self._check_input_size(x)
        x = self.stem(x)
        outs = []
        last = len(self.stages) - 1
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i == last:
                x = self.act_last(self.norm_last(x))
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _frozen_modules(self):
        modules = [self.stem] + list(self.stages[:self.frozen_stages])
        if self.frozen_stages == len(self.stages):
            modules.append(self.norm_last)
        return modules


class ShuffleBackbone(SparseBackbone):
    """Base of the ShuffleNetV2(+) family: stem, stages of units, last 1x1 conv.

    Outputs, indexed by ``out_indices``: the stem (only when
    :attr:`stem_is_output`), every stage, and the last 1x1 convolution.
    Subclasses define :attr:`arch_settings` and the layout constants, among
    them :attr:`with_sfr`: whether every stride-1 unit has a sparse feature
    reactivation.
    """

    #: Whether every stride-1 unit has a sparse feature reactivation.
    with_sfr = False
    #: Whether the stem's output (after its max pool) is output 0.
    stem_is_output = False
    stem_channels = 24
    stem_act = dict(type='ReLU')
    stem_maxpool = True
    last_channels = 1024
    arch_keys = ('widths', 'units', 'kinds', 'acts', 'se')

    def __init__(self, arch, in_channels=3, out_indices=(-1, ), frozen_stages=-1, deploy=False,
                 conv_cfg=None, norm_cfg=dict(type='BN'), norm_eval=False, with_cp=False,
                 init_cfg=None):
        super().__init__(arch, in_channels, out_indices, frozen_stages, deploy, conv_cfg,
                         norm_cfg, norm_eval, with_cp, init_cfg)
        widths, units = self.arch['widths'], self.arch['units']
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
                                         with_sfr=self.with_sfr, deploy=deploy, with_cp=with_cp,
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

    def _num_outputs(self) -> int:
        return len(self.arch['widths']) + 1 + int(self.stem_is_output)

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

    def fuse_for_inference(self, dense_below: int, backend: str) -> nn.Module:
        """Channels-last memory format (the depthwise convolutions and the max pool
        run much faster so in eager PyTorch; not for ``backend='onnx'``, whose graph is
        exported), inference-only; in place.

        Returns:
            nn.Module: ``self``.
        """
        if backend != 'onnx':
            self.to(memory_format=torch.channels_last)
        return super().fuse_for_inference(dense_below, backend)
