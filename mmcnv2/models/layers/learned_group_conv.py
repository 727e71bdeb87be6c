"""Learned group convolution (LGC) of CondenseNet / CondenseNetV2."""
import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer

from .channel_shuffle import channel_shuffle
from .sparse_conv import SparseConvBase, _new_conv, check_positive_ints


class LearnedGroupConv(SparseConvBase):
    """Learned group convolution: ``BN -> act -> masked conv``, pruned over inputs.

    Output channel ``o`` belongs to group ``o % groups``. At each of the
    ``condense_factor - 1`` stages every group drops the ``in_channels /
    condense_factor`` input channels it uses least (L1 norm of their weights
    within the group), so that after training each group reads exactly
    ``in_channels / condense_factor`` inputs. The deploy form is
    ``index_select -> BN -> act -> group conv -> channel shuffle`` (Huang et
    al., CondenseNet, CVPR 2018): a BatchNorm (per channel) is condensed with
    the inputs it normalises. A norm whose statistics span channels (e.g.
    GroupNorm) must see every input, so there the deploy form is ``norm ->
    act -> index_select -> group conv -> channel shuffle``.

    Args:
        in_channels (int): Input channels ``I``; divisible by ``condense_factor``.
        out_channels (int): Output channels; divisible by ``groups``.
        condense_factor (int): ``C``; each group keeps ``I / C`` inputs.
        groups (int): ``G``; the deploy form is a ``G``-group convolution.
        kernel_size (int): Odd kernel size, same padding. Defaults to 1.
        norm_cfg (dict): Norm layer config. Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation config. Defaults to ``dict(type='ReLU')``.
        deploy (bool): Build the deploy structure directly. Defaults to False.

    Example:
        >>> import torch
        >>> lgc = LearnedGroupConv(16, 32, condense_factor=4, groups=4)
        >>> lgc.sparsify(0.5)  # all 3 stages at once
        3
        >>> lgc.density
        0.25
        >>> x = torch.randn(1, 16, 8, 8)
        >>> y = lgc.eval()(x)
        >>> lgc.switch_to_deploy()
        >>> torch.allclose(lgc(x), y, atol=1e-6)
        True
    """

    factor_name = 'condense_factor'

    def __init__(self, in_channels: int, out_channels: int, condense_factor: int, groups: int,
                 kernel_size: int = 1, norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU'), deploy: bool = False):
        check_positive_ints(in_channels=in_channels, out_channels=out_channels,
                            condense_factor=condense_factor, groups=groups)  # before dividing
        if in_channels % condense_factor:
            raise ValueError(f'in_channels ({in_channels}) must be divisible by '
                             f'condense_factor ({condense_factor})')
        if out_channels % groups:
            raise ValueError(f'out_channels ({out_channels}) must be divisible by groups ({groups})')
        kept = in_channels * groups // condense_factor
        super().__init__(in_channels, out_channels, kernel_size, condense_factor, groups,
                         in_channels, norm_cfg, act_cfg, deploy)
        #: Whether the deploy form selects its inputs before the norm (a BatchNorm,
        #: condensed with them) or after it (a norm whose statistics span channels).
        self.select_before_norm = isinstance(self.norm, nn.modules.batchnorm._BatchNorm)
        if deploy:
            if self.select_before_norm:
                self.norm = build_norm_layer(norm_cfg, kept)[1]
            self.conv = _new_conv(kept, out_channels, kernel_size, groups)
            self.register_buffer('index', torch.zeros(kept, dtype=torch.long))
        else:
            self.conv = _new_conv(in_channels, out_channels, kernel_size, 1)
            self._init_training_state()

    def _connections(self, t):
        return t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deploy:
            if self.select_before_norm:
                x = self.act(self.norm(x.index_select(1, self.index)))
            else:
                x = self.act(self.norm(x)).index_select(1, self.index)
            return channel_shuffle(self.conv(x), self.groups)
        return self._masked_conv(self.act(self.norm(x)))

    @torch.no_grad()
    def switch_to_deploy(self):
        """Condense into ``index_select -> BN -> act -> group conv -> shuffle`` (other
        norms: ``norm -> act -> index_select -> group conv -> shuffle``)."""
        self._check_convertible()
        G, O = self.groups, self.out_channels
        keep = self.group_keep()                                   # (G, I)
        index = keep.nonzero()[:, 1]                               # ascending per group
        per_group = index.numel() // G
        weight = self.conv.weight                                  # (O, I, k, k)
        # conv output g*O/G + k is original output g + k*G; it reads the
        # inputs kept by group g, in ascending order.
        out_perm = torch.arange(O).view(O // G, G).t().reshape(-1)
        gathered = weight[out_perm].view(G, O // G, -1, *weight.shape[2:])
        cols = index.view(G, 1, per_group).expand(G, O // G, per_group)
        new_weight = gathered.gather(
            2, cols.reshape(G, O // G, per_group, 1, 1).expand(-1, -1, -1, *weight.shape[2:]))
        conv = _new_conv(index.numel(), O, self.kernel_size, G).to(weight)
        conv.weight.copy_(new_weight.reshape(O, per_group, *weight.shape[2:]))
        if self.select_before_norm:
            self.norm = _select_norm(self.norm, index)
        self.conv = conv
        del self.mask, self.stage
        self.register_buffer('index', index.to(weight.device))
        self.deploy = True


def _select_norm(norm: nn.Module, index: torch.Tensor) -> nn.Module:
    """A copy of a BatchNorm-like layer over the channels ``index`` (repeats allowed)."""
    if not isinstance(norm, nn.modules.batchnorm._BatchNorm):
        raise TypeError(f'only BatchNorm layers can be condensed, got {type(norm).__name__}')
    new = type(norm)(index.numel(), eps=norm.eps, momentum=norm.momentum,
                     affine=norm.affine, track_running_stats=norm.track_running_stats)
    new = new.to(device=index.device)
    if norm.affine:
        new.weight.data.copy_(norm.weight.data[index])
        new.bias.data.copy_(norm.bias.data[index])
    if norm.track_running_stats:
        new.running_mean.copy_(norm.running_mean[index])
        new.running_var.copy_(norm.running_var[index])
        new.num_batches_tracked.copy_(norm.num_batches_tracked)
    new.train(norm.training)
    return new
