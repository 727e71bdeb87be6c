"""Shared machinery of the learned-sparsity layers (LGC and SFR).

Both layers hold a dense convolution whose connections are pruned in stages
during training. A layer with factor ``F`` (condense factor ``C`` for the
learned group convolution, sparse factor ``S`` for sparse feature
reactivation) goes through ``F - 1`` pruning stages; each stage removes
``1/F`` of the candidate channels of every group, so after the last stage
every group keeps exactly ``1/F`` of them.

The schedule of the paper (Sec. 3.1) is expressed by :func:`stage_at`: a layer
is at stage ``min(F - 1, floor(2 * progress * (F - 1)))`` where ``progress`` is
the fraction of training done; all pruning is over at ``progress = 0.5``.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer


def stage_at(progress: float, factor: int) -> int:
    """The sparsification stage a layer with ``factor`` has at ``progress``.

    Args:
        progress (float): Fraction of training done, ``>= 0``.
        factor (int): Condense or sparse factor ``F``.

    Returns:
        int: ``min(F - 1, floor(2 * progress * (F - 1)))``. A stage boundary
        counts as crossed when ``progress`` reaches it exactly (the tiny
        tolerance guards against ``i / max_iters`` rounding just below it).

    Example:
        >>> stage_at(0.25, 8)
        3
        >>> stage_at(0.7, 8)
        7
    """
    if isinstance(progress, torch.Tensor):
        progress = float(progress)
    if not isinstance(progress, (int, float)) or not math.isfinite(progress) or progress < 0:
        raise ValueError(f'progress must be a finite number >= 0, got {progress!r}')
    return min(factor - 1, int(math.floor(2 * progress * (factor - 1) + 1e-9)))


def check_positive_ints(**values):
    """Raise ``ValueError`` naming the first argument that is not a positive int.

    Example:
        >>> check_positive_ints(groups=4, condense_factor=0)
        Traceback (most recent call last):
        ...
        ValueError: condense_factor must be a positive int, got 0
    """
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f'{name} must be a positive int, got {value!r}')


class SparseConvBase(nn.Module):
    """A pre-activation convolution ``norm -> act -> conv`` whose connections
    are learned and pruned group-wise.

    Subclasses define which axis of the weight is grouped and which is pruned
    by :meth:`_connections`, and build their deploy form themselves.

    In the training form the layer keeps the dense ``conv.weight`` (so the
    optimizer never sees a shape change), a persistent boolean ``mask`` buffer
    of shape ``(out_channels, in_channels)`` (one entry per kxk kernel) and a
    persistent ``stage`` counter.
    """

    #: Name of the factor in error messages ("condense_factor"/"sparse_factor").
    factor_name = 'factor'

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, factor: int,
                 groups: int, norm_channels: int, norm_cfg: dict, act_cfg: dict, deploy: bool):
        super().__init__()
        check_positive_ints(in_channels=in_channels, out_channels=out_channels,
                            kernel_size=kernel_size, **{self.factor_name: factor}, groups=groups)
        if kernel_size % 2 != 1:
            raise ValueError(f'kernel_size must be odd (same padding), got {kernel_size}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.factor = factor
        self.groups = groups
        self.deploy = deploy
        self.norm = build_norm_layer(norm_cfg, norm_channels)[1]
        self.act = build_activation_layer(act_cfg)

    # ------------------------------------------------------------------ state
    @property
    def num_stages(self) -> int:
        """Number of pruning stages, ``factor - 1``."""
        return self.factor - 1

    @property
    def is_fully_sparse(self) -> bool:
        """Whether every pruning stage is done (always true when deployed)."""
        return self.deploy or int(self.stage) >= self.num_stages

    def _init_training_state(self):
        self.register_buffer(
            'mask', torch.ones(self.out_channels, self.in_channels, dtype=torch.bool))
        self.register_buffer('stage', torch.zeros((), dtype=torch.long))

    def _connections(self, t: torch.Tensor) -> torch.Tensor:
        """View an ``(out, in)`` tensor as ``(members, candidates)``.

        Rows are the channels that define the groups (row ``r`` belongs to
        group ``r % groups``); columns are the channels that get pruned.
        """
        raise NotImplementedError

    @property
    def num_candidates(self) -> int:
        return self._connections(self.mask).shape[1]

    @property
    def delta(self) -> int:
        """Candidates pruned from every group at each stage."""
        return self.num_candidates // self.factor

    @property
    def density(self) -> float:
        """Fraction of live connections (``1 / factor`` once fully sparse)."""
        if self.deploy:
            return 1.0 / self.factor
        return float(self.mask.float().mean())

    def group_keep(self) -> torch.Tensor:
        """Boolean ``(groups, candidates)``: which candidates each group keeps."""
        conn = self._connections(self.mask)
        return conn[:self.groups]

    def importance(self) -> torch.Tensor:
        """Importance of every candidate for every group, ``(groups, candidates)``.

        The L1 norm of the masked weights between a group's members and the
        candidate; kxk kernels are first reduced by the max of ``|W|`` over the
        window (paper, footnote 2).
        """
        weight = self.conv.weight.detach().abs().amax(dim=(2, 3)) * self.mask
        conn = self._connections(weight)
        return conn.reshape(-1, self.groups, conn.shape[1]).sum(0)

    @torch.no_grad()
    def sparsify(self, progress: float) -> int:
        """Advance the layer to the stage of ``progress``; return stages dropped.

        Every stage crossed since the last call is dropped, however many. The
        selection is deterministic: the least important live candidates of a
        group go first, ties broken by the lower channel index.
        """
        if self.deploy:
            raise RuntimeError('sparsify() called on a layer in deploy form')
        target = stage_at(progress, self.factor)
        current = int(self.stage)
        if target <= current:
            return 0
        keep = self.group_keep()
        pruned = (~keep).sum(1)
        if not bool((pruned == current * self.delta).all()):
            raise RuntimeError(
                f'mask of {type(self).__name__} is inconsistent with its stage {current}: '
                f'pruned per group {pruned.tolist()}, expected {current * self.delta}')
        score = self.importance().float()
        score = torch.where(keep, score, torch.full_like(score, -1.0))
        order = torch.sort(score, dim=1, stable=True).indices
        new_keep = torch.ones_like(keep)
        new_keep.scatter_(1, order[:, :target * self.delta], False)
        rows = self._connections(self.mask).shape[0]
        conn = new_keep.unsqueeze(0).expand(rows // self.groups, -1, -1).reshape(rows, -1)
        self.mask.copy_(self._connections(conn))  # the view is its own inverse
        self.stage.fill_(target)
        return target - current

    def _masked_conv(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.conv.weight * self.mask[:, :, None, None].to(self.conv.weight.dtype)
        return F.conv2d(x, weight, None, self.conv.stride, self.conv.padding)

    def _check_convertible(self):
        if self.deploy:
            raise RuntimeError(f'{type(self).__name__} is already in deploy form')
        if not self.is_fully_sparse:
            raise ValueError(
                f'{type(self).__name__} has not finished sparsifying: stage '
                f'{int(self.stage)} of {self.num_stages}')

    def extra_repr(self) -> str:
        s = (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, '
             f'{self.factor_name}={self.factor}, groups={self.groups}')
        return s + (', deploy=True' if self.deploy else '')


def _new_conv(in_channels, out_channels, kernel_size, groups):
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                     groups=groups, bias=False)
