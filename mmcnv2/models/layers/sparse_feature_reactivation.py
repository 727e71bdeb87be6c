"""Sparse feature reactivation (SFR) of CondenseNetV2."""
import torch
import torch.nn.functional as F

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
    (``torch.onnx.export``, either exporter) therefore writes the sum as a
    gather instead: ONNX Runtime runs a scatter-add with repeated indices on
    several threads without synchronisation and loses updates. Row ``k`` of
    the non-persistent buffer ``gather_index`` lists, for every old channel,
    the position of its ``k``-th increment, or ``kept`` (a zero channel) when
    it has fewer; it is derived from ``index`` whenever ``index`` is set
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
            # set with ``index`` by ``load_state_dict``; empty until then
            self.register_buffer('gather_index', torch.zeros(0, out_channels, dtype=torch.long),
                                 persistent=False)
        else:
            self.conv = _new_conv(in_channels, out_channels, kernel_size, 1)
            self._init_training_state()

    def _connections(self, t):
        return t.t()

    def _gather_groups(self, x: torch.Tensor) -> torch.Tensor:
        """Order channels group by group: ``j = g + p*G -> g*(C/G) + p``."""
        n, c, h, w = x.shape
        return x.view(n, c // self.groups, self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)

    def _increment(self, new: torch.Tensor) -> torch.Tensor:
        """Deploy form: the ``kept`` increments, to be summed into channels ``index``."""
        x = self.act(self.norm(new))
        if self.groups > 1 and self.groups < self.in_channels:
            x = self._gather_groups(x)
        return self.conv(x)

    def _gathered_increment(self, new: torch.Tensor) -> torch.Tensor:
        """Deploy form for export: the increments summed per old channel, gathered
        through ``gather_index`` (no scatter, see the class docstring)."""
        rounds, out_channels = self.gather_index.shape
        if rounds == 0:
            raise RuntimeError('SparseFeatureReactivation: gather_index is not set; a deploy-form '
                               'layer gets it from load_state_dict or switch_to_deploy')
        inc = F.pad(self._increment(new), (0, 0, 0, 0, 0, 1))  # channel ``kept`` is zero
        gathered = inc.index_select(1, self.gather_index.flatten())
        return gathered.unflatten(1, (rounds, out_channels)).sum(1)

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
        self.register_buffer('gather_index', gather_index(index, self.out_channels).to(index),
                             persistent=False)
        self.deploy = True

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if self.deploy and prefix + 'index' in state_dict:
            self.gather_index = gather_index(self.index, self.out_channels).to(self.index)


def gather_index(index: torch.Tensor, num_targets: int) -> torch.Tensor:
    """The sum ``out.index_add_(1, index, src)`` written as a gather without repeats.

    Returns a ``(rounds, num_targets)`` LongTensor, ``rounds`` the largest number
    of times a target occurs in ``index`` (at least 1): row ``k``, column ``c``
    is the position in ``index`` of the ``k``-th occurrence of ``c`` (in order),
    or ``len(index)`` if ``c`` occurs at most ``k`` times. With ``src`` padded by
    a zero slice at position ``len(index)``, the sum over ``k`` of
    ``src[:, table[k]]`` is what ``index_add`` adds.

    Example:
        >>> gather_index(torch.tensor([2, 0, 2]), 4)
        tensor([[1, 3, 0, 3],
                [3, 3, 2, 3]])
    """
    index = index.cpu()
    counts = torch.bincount(index, minlength=num_targets)
    order = torch.argsort(index, stable=True)                 # positions grouped by target
    first = counts.cumsum(0) - counts                          # where each target's run starts
    rank = torch.arange(index.numel()) - first[index[order]]   # occurrence number
    table = torch.full((max(int(counts.max()), 1), num_targets), index.numel(), dtype=torch.long)
    table[rank, index[order]] = order
    return table
