"""Squeeze-and-excitation as used by CondenseNetV2 (bias-free linear layers)."""
import torch
import torch.nn as nn


class SqueezeExcitation(nn.Module):
    """``x * sigmoid(fc2(relu(fc1(avgpool(x)))))`` with bias-free ``fc1``/``fc2``.

    Args:
        channels (int): Channels of the input.
        reduction (int): Hidden width is ``channels // reduction``. Defaults to 16.

    Example:
        >>> import torch
        >>> se = SqueezeExcitation(32, reduction=4)
        >>> se(torch.randn(2, 32, 7, 7)).shape
        torch.Size([2, 32, 7, 7])
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        if not isinstance(reduction, int) or reduction < 1 or channels // reduction < 1:
            raise ValueError(f'reduction must be an int in [1, {channels}], got {reduction!r}')
        hidden = channels // reduction
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(channels, hidden, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, channels, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        y = self.pool(x).view(n, c)
        y = self.sigmoid(self.fc2(self.relu(self.fc1(y))))
        return x * y.view(n, c, 1, 1)
