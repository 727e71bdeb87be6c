"""ShuffleNetV2 / ShuffleNetV2+ units, optionally with sparse feature reactivation.

The units follow megvii's reference (ShuffleNet-Series): a stride-1 unit
splits its input into even channels ``x1`` (kept) and odd channels ``x2``
(processed by the branch) and outputs ``cat(x1, branch(x2))``; a stride-2 unit
processes the whole input in a projection branch and the main branch and
concatenates them. With SFR (CondenseNetV2 paper, Sec. 3.3 and Fig. 5) a
stride-1 unit also reactivates the kept half from the new features:
``cat(x1 + SFR(branch(x2)), branch(x2))``, with a 3x3 SFR whose groups and
sparse factor equal the half width, so that after training every new channel
updates exactly one old channel.
"""
import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import ConvModule, build_norm_layer

from .sparse_feature_reactivation import SparseFeatureReactivation

#: Unit kinds of ShuffleNetV2+ (megvii's architecture codes 0-3).
UNIT_KINDS = ('3x3', '5x5', '7x7', 'xception')


class ShuffleSqueezeExcitation(nn.Module):
    """megvii's SE: ``x * hsigmoid(conv(relu(bn(conv(avgpool(x))))))``, reduction 4."""

    def __init__(self, channels: int, norm_cfg=dict(type='BN')):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = nn.Conv2d(channels, channels // 4, 1, bias=False)
        self.norm = build_norm_layer(norm_cfg, channels // 4)[1]
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels // 4, channels, 1, bias=False)
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        return x * self.gate(self.conv2(self.relu(self.norm(self.conv1(self.pool(x))))))


def _conv(in_channels, out_channels, kernel_size, stride, groups, conv_cfg, norm_cfg, act_cfg):
    return ConvModule(in_channels, out_channels, kernel_size, stride, kernel_size // 2,
                      groups=groups, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)


class ShuffleUnit(nn.Module):
    """A ShuffleNetV2(+) unit, with optional SE and sparse feature reactivation.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels (equal to ``in_channels`` at stride 1).
        stride (int): 1 or 2.
        kind (str): One of :data:`UNIT_KINDS`.
        act_cfg (dict): Activation of the unit.
        with_se (bool): SE at the end of the main branch.
        with_sfr (bool): Sparse feature reactivation (stride-1 units only).
        conv_cfg, norm_cfg: Layer configs.
        deploy (bool): Build the SFR in deploy form.
        with_cp (bool): Gradient checkpointing.

    Example:
        >>> import torch
        >>> unit = ShuffleUnit(48, 48, 1, '3x3', dict(type='ReLU'), with_sfr=True)
        >>> unit(torch.randn(1, 48, 14, 14)).shape
        torch.Size([1, 48, 14, 14])
    """

    def __init__(self, in_channels, out_channels, stride, kind, act_cfg, with_se=False,
                 with_sfr=False, conv_cfg=None, norm_cfg=dict(type='BN'), deploy=False,
                 with_cp=False):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f'stride must be 1 or 2, got {stride!r}')
        if kind not in UNIT_KINDS:
            raise ValueError(f'kind must be one of {UNIT_KINDS}, got {kind!r}')
        if stride == 1 and (in_channels != out_channels or in_channels % 2):
            raise ValueError('a stride-1 unit needs in_channels == out_channels, even, got '
                             f'{in_channels} and {out_channels}')
        self.stride = stride
        self.with_cp = with_cp
        branch_in = in_channels if stride == 2 else in_channels // 2
        mid = out_channels // 2
        branch_out = out_channels - branch_in
        args = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        if kind == 'xception':
            layers = [
                _conv(branch_in, branch_in, 3, stride, branch_in, act_cfg=None, **args),
                _conv(branch_in, mid, 1, 1, 1, act_cfg=act_cfg, **args),
                _conv(mid, mid, 3, 1, mid, act_cfg=None, **args),
                _conv(mid, mid, 1, 1, 1, act_cfg=act_cfg, **args),
                _conv(mid, mid, 3, 1, mid, act_cfg=None, **args),
                _conv(mid, branch_out, 1, 1, 1, act_cfg=act_cfg, **args),
            ]
            k = 3
        else:
            k = int(kind[0])
            layers = [
                _conv(branch_in, mid, 1, 1, 1, act_cfg=act_cfg, **args),
                _conv(mid, mid, k, stride, mid, act_cfg=None, **args),
                _conv(mid, branch_out, 1, 1, 1, act_cfg=act_cfg, **args),
            ]
        if with_se:
            layers.append(ShuffleSqueezeExcitation(branch_out, norm_cfg))
        self.branch_main = nn.Sequential(*layers)
        if stride == 2:
            self.branch_proj = nn.Sequential(
                _conv(in_channels, in_channels, k, 2, in_channels, act_cfg=None, **args),
                _conv(in_channels, in_channels, 1, 1, 1, act_cfg=act_cfg, **args))
        self.sfr = None
        if with_sfr and stride == 1:
            half = in_channels // 2
            self.sfr = SparseFeatureReactivation(half, half, sparse_factor=half, groups=half,
                                                 kernel_size=3, norm_cfg=norm_cfg,
                                                 act_cfg=act_cfg, deploy=deploy)

    def _forward(self, x):
        if self.stride == 2:
            return torch.cat([self.branch_proj(x), self.branch_main(x)], dim=1)
        n, c, h, w = x.shape
        pairs = x.view(n, c // 2, 2, h, w)
        kept, new = pairs[:, :, 0], pairs[:, :, 1]
        new = self.branch_main(new)
        if (self.sfr is not None and self.sfr.deploy and not torch.is_grad_enabled()
                and not torch.onnx.is_in_onnx_export()):
            # eager inference: reactivate inside the concatenation, saving a copy of the kept half
            out = torch.cat([kept, new], dim=1)
            self.sfr.add_increment_(new, out[:, :c // 2])
            return out
        if self.sfr is not None:
            kept = self.sfr(new, kept)
        return torch.cat([kept, new], dim=1)

    def forward(self, x):
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)
