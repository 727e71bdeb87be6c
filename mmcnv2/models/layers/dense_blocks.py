"""Building blocks of densely connected networks (DenseNet / CondenseNet family)."""
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_conv_layer, build_norm_layer


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


class DenseStage(nn.Module):
    """A dense block, preceded by a 2x2 average pool except for the first one."""

    def __init__(self, layers, downsample):
        super().__init__()
        self.pool = nn.AvgPool2d(2, 2) if downsample else nn.Identity()
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(self.pool(x))
