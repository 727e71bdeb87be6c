"""What the CondenseNetV2 and ShuffleNetV2+ heads share: an SE on the pooled vector, then
a hidden linear layer and the classifier."""
from typing import Tuple

import torch
from mmpretrain.models.heads import ClsHead


class PooledSEHead(ClsHead):
    """Base of heads on globally pooled ``(N, C)`` features that start with an SE
    (``self.se``) and end with ``self.classifier`` on :meth:`pre_logits`.

    Subclasses build ``se`` and ``classifier`` and define :meth:`hidden`, what
    runs between them.
    """

    def squeezed(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """The last pooled features, through the SE.

        Raises:
            ValueError: if they are not ``(N, C)`` (no pooling neck before the head).
        """
        x = feats[-1]
        if x.dim() != 2:
            raise ValueError(f'{type(self).__name__} expects pooled (N, C) features; put a '
                             f'GlobalAveragePooling neck before it, got shape {tuple(x.shape)}')
        return self.se(x[:, :, None, None]).flatten(1)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The layers between the SE and the classifier."""
        raise NotImplementedError

    def pre_logits(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        return self.hidden(self.squeezed(feats))

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.pre_logits(feats))
