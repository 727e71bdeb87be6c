"""Building blocks of densely connected networks (DenseNet / CondenseNet family).

The dense layers of CondenseNet (:class:`CondenseDenseLayer`) and CondenseNetV2
(:class:`SFRDenseLayer`), and the stage that chains them
(:class:`DenseStage`), whose inference-only form is
:class:`~mmcnv2.models.layers.FusedSFRDenseStage`.
"""
import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_activation_layer, build_conv_layer, build_norm_layer

from .fused_dense_stage import FusedSFRDenseStage
from .learned_group_conv import LearnedGroupConv
from .sparse_feature_reactivation import SparseFeatureReactivation
from .squeeze_excitation import SqueezeExcitation


class PreActConv(nn.Module):
    """``norm -> act -> conv`` (DenseNet pre-activation order)."""

    def __init__(self, in_channels, out_channels, kernel_size, groups, conv_cfg, norm_cfg, act_cfg):
        super().__init__()
        self.norm = build_norm_layer(norm_cfg, in_channels)[1]
        self.act = build_activation_layer(act_cfg)
        self.conv = build_conv_layer(conv_cfg, in_channels, out_channels, kernel_size,
                                     padding=kernel_size // 2, groups=groups, bias=False)

    def forward(self, x):
        return self.conv(self.act(self.norm(x)))


class _CheckpointedLayer(nn.Module):
    """A dense layer whose ``_forward`` runs under gradient checkpointing when ``with_cp``."""

    def forward(self, x):
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


class CondenseDenseLayer(_CheckpointedLayer):
    """CondenseNet's dense layer: ``cat([x, GConv3x3(LGC1x1(x))])``, ReLU only.

    Example:
        >>> import torch
        >>> layer = CondenseDenseLayer(16, 8, 4, 4, 4, None, dict(type='BN'))
        >>> layer(torch.randn(1, 16, 5, 5)).shape
        torch.Size([1, 24, 5, 5])
    """

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


class SFRDenseLayer(_CheckpointedLayer):
    """The dense layer of CondenseNetV2 (paper Fig. 4, right).

    ``new = SE(GConv3x3(LGC1x1(x)))``; ``out = cat([SFR(new) + x, new])``: the
    reactivated old features first, the ``growth_rate`` new ones last.

    Example:
        >>> import torch
        >>> layer = SFRDenseLayer(16, 8, 4, 4, 4, 4, True, None, dict(type='BN'),
        ...                       dict(type='ReLU'))
        >>> layer(torch.randn(1, 16, 5, 5)).shape
        torch.Size([1, 24, 5, 5])
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


class DenseStage(nn.Module):
    """A dense block, preceded by a 2x2 average pool except for the first one."""

    def __init__(self, layers, downsample):
        super().__init__()
        self.pool = nn.AvgPool2d(2, 2) if downsample else nn.Identity()
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(self.pool(x))

    def fuse_for_inference(self, dense_below: int, backend: str) -> nn.Module:
        """The :class:`FusedSFRDenseStage` of a deploy-form stage of
        :class:`SFRDenseLayer`; this stage itself for other layers (or none),
        which have no fused form."""
        if len(self.layers) and all(isinstance(layer, SFRDenseLayer) for layer in self.layers):
            return FusedSFRDenseStage(self, dense_below, backend=backend)
        return self
