"""The classification head of CondenseNet (v1), with its condensed classifier."""
from typing import Tuple

import torch
import torch.nn as nn
from mmpretrain.models.heads import ClsHead

from ...registry import register
from ..forms import TRAINING, CheckpointFormError, CheckpointMismatchError, form_mismatch_message


@register('MODELS', codebases=('mmpretrain', ))
class CondenseNetClsHead(ClsHead):
    """Linear classifier on pooled features; the deploy form may drop inputs.

    CondenseNet's converter keeps only the ``keep_ratio`` share of the
    classifier's input features with the largest L1 weight norm (columns),
    which is lossy unless those columns are zero. ``keep_ratio=1.0`` (the
    default) keeps every input and the deploy form is exact; the paper's
    CondenseNet-C figures (274M / 2.9M) are those of ``keep_ratio=0.5``.

    A training-form head loads deploy-form weights exactly (the dropped
    columns become zeros), so a deploy checkpoint needs only
    ``model.backbone.deploy=True``; ``deploy=True`` gives the condensed
    classifier itself. A deploy-form head refuses training-form weights.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Channels of the pooled features.
        keep_ratio (float): Share of inputs the deploy form keeps, in (0, 1].
        deploy (bool): Build the deploy structure directly.
        init_cfg (dict, optional): Init config.
        **kwargs: Passed to :class:`mmpretrain.models.heads.ClsHead`.

    Example:
        >>> import torch
        >>> head = CondenseNetClsHead(10, 64, keep_ratio=0.5)
        >>> head.switch_to_deploy()
        >>> head.fc.in_features, head((torch.randn(2, 64), )).shape
        (32, torch.Size([2, 10]))
    """

    def __init__(self, num_classes: int, in_channels: int, keep_ratio: float = 1.0,
                 deploy: bool = False, init_cfg=None, **kwargs):
        super().__init__(init_cfg=init_cfg, **kwargs)
        if not 0 < keep_ratio <= 1:
            raise ValueError(f'keep_ratio must be in (0, 1], got {keep_ratio!r}')
        kept = max(1, int(round(in_channels * keep_ratio)))
        self.num_classes, self.in_channels, self.keep_ratio = num_classes, in_channels, keep_ratio
        self.deploy = deploy
        self.fc = nn.Linear(kept if deploy else in_channels, num_classes)
        if deploy:
            self.register_buffer('index', torch.arange(kept))

    def pre_logits(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        return x.index_select(1, self.index) if self.deploy else x

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        return self.fc(self.pre_logits(feats))

    @torch.no_grad()
    def switch_to_deploy(self):
        """Keep the ``keep_ratio`` inputs with the largest column L1 norm."""
        if self.deploy:
            return
        kept = max(1, int(round(self.in_channels * self.keep_ratio)))
        norms = self.fc.weight.abs().sum(0)
        index = torch.sort(torch.argsort(norms, descending=True, stable=True)[:kept]).values
        fc = nn.Linear(kept, self.num_classes).to(self.fc.weight)
        fc.weight.copy_(self.fc.weight[:, index])
        fc.bias.copy_(self.fc.bias)
        self.fc = fc
        self.register_buffer('index', index)
        self.deploy = True

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # torch and mmengine pass each module a dict of its own to load from
        index = state_dict.get(prefix + 'index')
        weight = state_dict.get(prefix + 'fc.weight')
        if self.deploy and index is None and weight is not None:
            raise CheckpointFormError(form_mismatch_message(type(self).__name__, prefix, TRAINING))
        if not self.deploy and index is not None and weight is not None:
            state_dict[prefix + 'fc.weight'] = self._expand_condensed(index, weight, prefix)
            del state_dict[prefix + 'index']
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _expand_condensed(self, index, weight, prefix):
        """The dense classifier weight equal to a condensed one: zeros where dropped."""
        valid = (index.dim() == 1 and not index.is_floating_point()
                 and tuple(weight.shape) == (self.num_classes, index.numel())
                 and index.unique().numel() == index.numel()
                 and (index.numel() == 0 or 0 <= int(index.min()) <= int(index.max())
                      < self.in_channels))
        if not valid:
            raise CheckpointMismatchError(
                f"the checkpoint's condensed classifier under '{prefix}' (index "
                f'{tuple(index.shape)}, fc.weight {tuple(weight.shape)}) does not fit '
                f'{type(self).__name__}({self.num_classes}, {self.in_channels})')
        dense = weight.new_zeros(self.num_classes, self.in_channels)
        dense[:, index] = weight
        return dense
