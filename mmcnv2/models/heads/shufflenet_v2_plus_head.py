"""The classification head of ShuffleNetV2+ (megvii)."""
import torch
import torch.nn as nn

from ...registry import register
from ..layers import ShuffleSqueezeExcitation
from .pooled_se_head import PooledSEHead


@register('MODELS', codebases=('mmpretrain', ))
class ShuffleNetV2PlusClsHead(PooledSEHead):
    """``SE -> Linear (no bias) -> h-swish -> dropout -> Linear (no bias)``.

    megvii's ShuffleNetV2+ head on globally pooled features (use a
    ``GlobalAveragePooling`` neck before it).

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels of the pooled features (1280).
        fc_channels (int): Width of the hidden layer. Defaults to 1280.
        dropout (float): Dropout before the classifier. Defaults to 0.2.
        init_cfg (dict, optional): Init config.
        **kwargs: Passed to :class:`mmpretrain.models.heads.ClsHead`.

    Example:
        >>> import torch
        >>> head = ShuffleNetV2PlusClsHead(10, 64, fc_channels=32).eval()
        >>> head((torch.randn(2, 64), )).shape
        torch.Size([2, 10])
    """

    def __init__(self, num_classes: int, in_channels: int, fc_channels: int = 1280,
                 dropout: float = 0.2, init_cfg=None, **kwargs):
        super().__init__(init_cfg=init_cfg, **kwargs)
        if not 0 <= dropout < 1:
            raise ValueError(f'dropout must be in [0, 1), got {dropout!r}')
        self.num_classes, self.in_channels = num_classes, in_channels
        self.se = ShuffleSqueezeExcitation(in_channels)
        self.fc = nn.Linear(in_channels, fc_channels, bias=False)
        self.act = nn.Hardswish()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(fc_channels, num_classes, bias=False)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.act(self.fc(x)))
