"""The channel shuffle of ShuffleNet and CondenseNet."""
import torch


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave ``groups`` contiguous channel blocks: ``g*n + k -> k*groups + g``.

    The operation of :func:`mmpretrain.models.utils.channel_shuffle`, which
    cannot take an empty batch (it infers a size from zero elements); this one
    gives every size, so a detector's empty batches and ``torch.export`` with a
    dynamic batch go through.

    Args:
        x (Tensor): ``(N, C, H, W)`` with ``C`` divisible by ``groups``.
        groups (int): Number of contiguous blocks to interleave.

    Example:
        >>> import torch
        >>> channel_shuffle(torch.arange(6.).view(1, 6, 1, 1), 2).flatten().tolist()
        [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
        >>> channel_shuffle(torch.randn(0, 6, 2, 2), 3).shape
        torch.Size([0, 6, 2, 2])
    """
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)
