"""Sparse feature reactivation (SFR) of CondenseNetV2."""
from typing import Tuple

import torch
import torch.nn.functional as F

from .channel_shuffle import channel_shuffle
from .sparse_conv import SparseConvBase, _new_conv, check_positive_ints


class SparseFeatureReactivation(SparseConvBase):
    """Sparse feature reactivation: ``old + masked conv(act(BN(new)))``.

    The module turns the ``in_channels`` new features of a layer into an
    increment for the ``out_channels`` old features it reactivates (Yang et
    al., CondenseNetV2, CVPR 2021, Sec. 3.1). Input channel ``j`` belongs to
    group ``j % groups``; at each of the ``sparse_factor - 1`` stages every
    group stops updating the ``out_channels / sparse_factor`` old channels it
    contributes to least, so that after training each group updates exactly
    ``out_channels / sparse_factor`` of them. kxk kernels are supported (the
    importance of a kernel is the max of ``|W|`` over its window), as
    SFR-ShuffleNetV2 needs.

    The deploy form is ``BN -> act -> group gather -> group conv`` whose
    outputs are summed into their target old channels with ``index_add``
    (a LongTensor ``index``, never a dense 0/1 matrix). Several groups may
    update the same old channel, so ``index`` repeats entries. ONNX export
    (``torch.onnx.export``, either exporter) therefore writes the sum with
    gathers instead (:func:`reactivation_layout`): ONNX Runtime runs a
    scatter-add with repeated indices on several threads without
    synchronisation and loses updates. The layout is held in non-persistent
    buffers derived from ``index`` whenever ``index`` is set
    (:meth:`switch_to_deploy`, loading a state dict).

    Args:
        in_channels (int): New-feature channels; divisible by ``groups``.
        out_channels (int): Old-feature channels; divisible by ``sparse_factor``.
        sparse_factor (int): ``S``; each group updates ``out_channels / S`` channels.
        groups (int): ``G``.
        kernel_size (int): Odd kernel size, same padding. Defaults to 1.
        norm_cfg (dict): Norm layer config. Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation config. Defaults to ``dict(type='ReLU')``.
        deploy (bool): Build the deploy structure directly. Defaults to False.

    Example:
        >>> import torch
        >>> sfr = SparseFeatureReactivation(8, 16, sparse_factor=4, groups=4)
        >>> new, old = torch.randn(1, 8, 5, 5), torch.randn(1, 16, 5, 5)
        >>> sfr.sparsify(1.0)
        3
        >>> y = sfr.eval()(new, old)
        >>> sfr.switch_to_deploy()
        >>> torch.allclose(sfr(new, old), y, atol=1e-6)
        True
    """

    factor_name = 'sparse_factor'

    def __init__(self, in_channels: int, out_channels: int, sparse_factor: int, groups: int,
                 kernel_size: int = 1, norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU'), deploy: bool = False):
        check_positive_ints(in_channels=in_channels, out_channels=out_channels,
                            sparse_factor=sparse_factor, groups=groups)  # before dividing
        if in_channels % groups:
            raise ValueError(f'in_channels ({in_channels}) must be divisible by groups ({groups})')
        if out_channels % sparse_factor:
            raise ValueError(f'out_channels ({out_channels}) must be divisible by '
                             f'sparse_factor ({sparse_factor})')
        super().__init__(in_channels, out_channels, kernel_size, sparse_factor, groups,
                         in_channels, norm_cfg, act_cfg, deploy)
        if deploy:
            kept = out_channels * groups // sparse_factor
            self.conv = _new_conv(in_channels, kept, kernel_size, groups)
            self.register_buffer('index', torch.zeros(kept, dtype=torch.long))
            self._set_export_layout()  # again when load_state_dict sets ``index``
        else:
            self.conv = _new_conv(in_channels, out_channels, kernel_size, 1)
            self._init_training_state()

    def _connections(self, t):
        return t.t()

    def _increment(self, new: torch.Tensor) -> torch.Tensor:
        """Deploy form: the ``kept`` increments, to be summed into channels ``index``."""
        x = self.act(self.norm(new))
        if self.groups > 1 and self.groups < self.in_channels:
            # channels group by group: j = g + p*G -> g*(C/G) + p
            x = channel_shuffle(x, self.in_channels // self.groups)
        return self.conv(x)

    def _set_export_layout(self):
        order, placement, self.export_rounds = reactivation_layout(self.index, self.out_channels)
        self.register_buffer('export_order', order.to(self.index), persistent=False)
        self.register_buffer('export_placement', placement.to(self.index), persistent=False)

    def _gathered_increment(self, new: torch.Tensor) -> torch.Tensor:
        """Deploy form for export: the increments summed per old channel with gathers,
        slices and adds in the layout of :func:`reactivation_layout` (no scatter)."""
        inc = self._increment(new).index_select(1, self.export_order)
        total = inc[:, :self.export_rounds[0]]
        start = self.export_rounds[0]
        for size in self.export_rounds[1:]:
            total = torch.cat([total[:, :size] + inc[:, start:start + size], total[:, size:]], 1)
            start += size
        if self.export_rounds[0] < self.out_channels:  # channels without increment read 0
            total = F.pad(total, (0, 0, 0, 0, 0, 1))
        return total.index_select(1, self.export_placement)

    def forward(self, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
        """Return ``old`` with the increments computed from ``new`` added."""
        if self.deploy:
            if torch.onnx.is_in_onnx_export():
                return old + self._gathered_increment(new)
            return old.index_add(1, self.index, self._increment(new))
        return old + self._masked_conv(self.act(self.norm(new)))

    def add_increment_(self, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
        """In-place ``forward`` for inference in deploy form: add into ``old`` (a view is
        fine) instead of copying it. Returns ``old``. Eager only: an exported graph
        calls :meth:`forward`."""
        if not self.deploy:
            raise RuntimeError('add_increment_() needs the deploy form')
        if torch.onnx.is_in_onnx_export():
            raise RuntimeError('add_increment_() is eager-only; call forward() in ONNX export')
        return old.index_add_(1, self.index, self._increment(new))

    @torch.no_grad()
    def switch_to_deploy(self):
        """Condense into ``BN -> act -> gather -> group conv -> index_add``."""
        self._check_convertible()
        G, I = self.groups, self.in_channels
        keep = self.group_keep()                                   # (G, O)
        nz = keep.nonzero()                                        # rows sorted by (g, o)
        index = nz[:, 1]
        # conv output r (group g = r // per_group) reads inputs g + p*G.
        cols = (nz[:, 0].view(-1, 1) + torch.arange(I // G, device=nz.device).view(1, -1) * G)
        weight = self.conv.weight                                  # (O, I, k, k)
        new_weight = weight[index.view(-1, 1), cols]               # (kept, I/G, k, k)
        conv = _new_conv(I, index.numel(), self.kernel_size, G).to(weight)
        conv.weight.copy_(new_weight)
        self.conv = conv
        del self.mask, self.stage
        self.register_buffer('index', index.to(weight.device))
        self._set_export_layout()
        self.deploy = True

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if self.deploy and prefix + 'index' in state_dict:
            self._set_export_layout()


def reactivation_layout(index: torch.Tensor, num_targets: int) -> Tuple[torch.Tensor,
                                                                       torch.Tensor, tuple]:
    """``out.index_add(1, index, src)`` as gathers and adds without repeated indices.

    Targets are ranked by how often they occur in ``index``, most first. Round
    ``k`` adds the ``k``-th occurrence of the targets that occur more than
    ``k`` times, ``rounds[k]`` of them, a prefix of that ranking. With
    ``src = src.index_select(1, order)`` the rounds are consecutive slices of
    ``src``, summed into ``total`` (the first round's width) by slicing;
    ``total``, padded with one zero slice, indexed by ``placement`` gives the
    increment of every target in target order.

    Args:
        index (torch.Tensor): 1-D LongTensor of targets in ``[0, num_targets)``.
        num_targets (int): Size of the target axis.

    Returns:
        tuple: ``order`` (a permutation of ``range(len(index))``),
        ``placement`` (``num_targets`` entries; ``rounds[0]`` for a target
        that never occurs) and ``rounds`` (a tuple of ints summing to
        ``len(index)``).

    Example:
        >>> order, placement, rounds = reactivation_layout(torch.tensor([2, 0, 2]), 4)
        >>> order.tolist(), placement.tolist(), rounds
        ([0, 1, 2], [1, 2, 0, 2], (2, 1))
        >>> src = torch.tensor([[10., 20., 30.]])
        >>> total = src[:, order][:, :2]
        >>> total[:, :1] += src[:, order][:, 2:]
        >>> torch.cat([total, torch.zeros(1, 1)], 1)[:, placement]
        tensor([[20.,  0., 40.,  0.]])
    """
    index = index.cpu()
    counts = torch.bincount(index, minlength=num_targets)
    ranking = torch.argsort(-counts, stable=True)              # most occurrences first
    rank_of = torch.empty_like(ranking)
    rank_of[ranking] = torch.arange(num_targets)
    by_target = torch.argsort(index, stable=True)              # occurrences, in order
    first = counts.cumsum(0) - counts
    occurrence = torch.empty_like(index)
    occurrence[by_target] = torch.arange(index.numel()) - first[index[by_target]]
    order = torch.argsort(occurrence * num_targets + rank_of[index])
    rounds = tuple(torch.bincount(occurrence).tolist())
    placement = torch.full((num_targets, ), rounds[0], dtype=torch.long)
    placement[ranking[:rounds[0]]] = torch.arange(rounds[0])
    return order, placement, rounds
