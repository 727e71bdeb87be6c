"""OpenMMLab backbone conventions shared by the learned-sparsity backbones."""
import copy
from typing import List, Sequence

import torch.nn as nn
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm

from ..deploy import sparse_layers, switch_model_to_deploy
from ..forms import check_incoming_weights
from ..layers import DenseStage, check_positive_ints


def _check_non_negative_ints(**values):
    """Raise ``ValueError`` naming the first argument that is not an int >= 0."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f'{name} must be an int >= 0, got {value!r}')


class SparseBackbone(BaseModule):
    """Base of backbones holding LGC / SFR layers.

    Subclasses call :meth:`_set_conventions` in their constructor, record their
    constructor arguments in ``self._build_args`` (for
    :meth:`training_form_copy`) and implement :meth:`_frozen_modules`.
    It provides what mmpretrain/mmdet users expect: validated ``out_indices``
    and ``frozen_stages``, ``norm_eval``, ``train()`` returning ``self``,
    strict ``Pretrained`` loading in either form, and ``switch_to_deploy()``.

    Every load of weights into the backbone is checked, whoever loads them
    (mmengine's ``load_checkpoint``/``load_from``/resume, mmdet's
    ``init_detector``, the inferencers), strict or not: weights of the other
    form (training / deploy), a checkpoint with no weights for the backbone,
    and missing, unexpected or mis-shaped keys are errors that say what to do,
    never a model left with random weights.
    """

    def _set_conventions(self, num_stages: int, out_indices, frozen_stages: int,
                         norm_eval: bool, with_cp: bool, deploy: bool):
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        message = (f'out_indices must be a non-empty sequence of ints in [{-num_stages}, '
                   f'{num_stages - 1}], got {out_indices!r}')
        if not isinstance(out_indices, Sequence) or isinstance(out_indices, str) \
                or not out_indices:
            raise ValueError(message)
        indices = []
        for index in out_indices:
            if isinstance(index, bool) or not isinstance(index, int) \
                    or not -num_stages <= index < num_stages:
                raise ValueError(message)
            indices.append(index % num_stages)
        if isinstance(frozen_stages, bool) or not isinstance(frozen_stages, int) \
                or not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be an int in [-1, {num_stages}], '
                             f'got {frozen_stages!r}')
        self.out_indices = tuple(indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.deploy = deploy

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
        switch_model_to_deploy(self)

    def training_form_copy(self):
        """A new training-form backbone with this one's arguments (no init)."""
        return type(self)(**self._build_args, deploy=False)

    def init_weights(self):
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            # strict: a partial load is an error, and either checkpoint form
            # fits a deploy-form backbone (see load_pretrained_backbone)
            from ...checkpoint.pretrained import load_pretrained_backbone
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
    (each with ``depths``, ``growth_rates`` and ``stem_stride``) and call
    :meth:`_build_dense` with a factory of their dense layer.
    """

    arch_settings: dict = {}

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

    def _build_dense(self, make_layer, in_channels: int, conv_cfg, norm_cfg):
        """Build stem, stages and the last norm; ``make_layer(stage, channels, growth)``."""
        check_positive_ints(in_channels=in_channels)
        arch = self.arch
        channels = 2 * arch['growth_rates'][0]
        self.stem = build_conv_layer(conv_cfg, in_channels, channels, 3,
                                     stride=arch['stem_stride'], padding=1, bias=False)
        self.stages = nn.ModuleList()
        stage_channels = []
        for i, (depth, growth) in enumerate(zip(arch['depths'], arch['growth_rates'])):
            layers = []
            for _ in range(depth):
                layers.append(make_layer(i, channels, growth))
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
