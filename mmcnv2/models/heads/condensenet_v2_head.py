"""The classification head of CondenseNetV2."""
import torch
import torch.nn as nn

from ...registry import register
from ..layers import SqueezeExcitation, check_positive_ints
from .pooled_se_head import PooledSEHead


@register('MODELS', codebases=('mmpretrain', ))
class CondenseNetV2ClsHead(PooledSEHead):
    """``SE -> Linear -> h-swish -> Linear`` on globally pooled features.

    The head of the release: squeeze-and-excitation (reduction 16) on the
    pooled vector, a linear layer to ``fc_channels`` (828 for A, 1024 for
    B/C), h-swish, and the classifier. Use it after a
    ``GlobalAveragePooling`` neck.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels of the pooled features.
        fc_channels (int): Width of the hidden linear layer.
        se_reduction (int): SE reduction. Defaults to 16.
        init_cfg (dict, optional): Init config. Defaults to None (PyTorch's
            default Linear init, as in the release).
        **kwargs: Passed to :class:`mmpretrain.models.heads.ClsHead`
            (``loss``, ``topk``, ``cal_acc``).

    Example:
        >>> import torch
        >>> head = CondenseNetV2ClsHead(num_classes=10, in_channels=64, fc_channels=32)
        >>> head((torch.randn(2, 64), )).shape
        torch.Size([2, 10])
    """

    def __init__(self, num_classes: int, in_channels: int, fc_channels: int,
                 se_reduction: int = 16, init_cfg=None, **kwargs):
        super().__init__(init_cfg=init_cfg, **kwargs)
        check_positive_ints(num_classes=num_classes, in_channels=in_channels,
                            fc_channels=fc_channels)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.se = SqueezeExcitation(in_channels, se_reduction)
        self.fc = nn.Linear(in_channels, fc_channels)
        self.act = nn.Hardswish()
        self.classifier = nn.Linear(fc_channels, num_classes)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc(x))
