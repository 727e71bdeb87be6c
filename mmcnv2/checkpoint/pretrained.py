"""Strict loading of ImageNet weights into a sparse backbone (training or deploy form)."""
from collections import OrderedDict
from typing import Optional

import torch.nn as nn

from ..models.deploy import sparse_layers, switch_model_to_deploy
from ..models.forms import (DEPLOY, TRAINING, CheckpointFormError, CheckpointMismatchError,
                            compare_state_dicts, describe_mismatch, state_dict_form)
from .files import read_checkpoint, state_dict_of


class PretrainedMismatchError(CheckpointMismatchError):
    """A pretrained checkpoint does not cover the backbone exactly."""


def backbone_state_dict(checkpoint: str, prefix: Optional[str] = 'backbone.',
                        map_location='cpu') -> 'OrderedDict':
    """The ``prefix``-ed part of a checkpoint's state dict, prefix removed.

    Files are read by :func:`~mmcnv2.checkpoint.files.read_checkpoint` (local
    paths with ``torch.load(weights_only=True)``, URLs with mmengine).
    """
    sd = state_dict_of(read_checkpoint(checkpoint, map_location=map_location))
    if not prefix:
        return sd
    out = OrderedDict((k[len(prefix):], v) for k, v in sd.items() if k.startswith(prefix))
    if not out:
        raise PretrainedMismatchError(
            f'no key of {checkpoint} starts with prefix {prefix!r}; for an mmpretrain '
            "classifier checkpoint use prefix='backbone.', for a bare backbone prefix=None")
    return out


def load_pretrained_backbone(backbone: nn.Module, checkpoint: str,
                             prefix: Optional[str] = 'backbone.'):
    """Load ``checkpoint`` into ``backbone``: every weight must be found.

    * training-form checkpoint -> training-form backbone: loaded as is, masks
      and stages included (a backbone that is not fully sparse keeps
      sparsifying under ``SparsifyHook``);
    * training-form checkpoint, fully sparse -> deploy-form backbone: loaded
      into a training-form copy and condensed;
    * deploy-form checkpoint -> deploy-form backbone: loaded as is.

    Raises:
        PretrainedMismatchError: on any missing or unexpected key or shape, a
            deploy-form checkpoint for a training-form backbone, or a
            checkpoint that has not finished sparsifying for a deploy-form one.
    """
    sd = backbone_state_dict(checkpoint, prefix)
    try:
        src_form, dst_form = state_dict_form(sd), state_dict_form(backbone.state_dict())
    except CheckpointFormError as e:
        raise PretrainedMismatchError(f'{checkpoint}: {e}') from None
    if src_form == DEPLOY and dst_form == TRAINING:
        raise PretrainedMismatchError(
            f'{checkpoint} holds a deploy-form (condensed) backbone; build the backbone with '
            'deploy=True to load it')
    if src_form == TRAINING and dst_form == DEPLOY:
        if not hasattr(backbone, 'training_form_copy'):
            raise PretrainedMismatchError(f'{type(backbone).__name__} cannot convert a '
                                          'training-form checkpoint')
        twin = backbone.training_form_copy()
        _strict_load(twin, sd, checkpoint)
        unfinished = [(n, m) for n, m in sparse_layers(twin) if not m.is_fully_sparse]
        if unfinished:
            n, m = unfinished[0]
            raise PretrainedMismatchError(
                f'{checkpoint} has not finished sparsifying ({n} is at stage {int(m.stage)} of '
                f'{m.num_stages}); fine-tune it with deploy=False under SparsifyHook')
        switch_model_to_deploy(twin)
        sd = twin.state_dict()
    _strict_load(backbone, sd, checkpoint)


def _strict_load(module: nn.Module, sd, checkpoint: str):
    problems = compare_state_dicts(module.state_dict(), sd)
    if any(problems.values()):
        raise PretrainedMismatchError(
            f'{checkpoint} does not match {type(module).__name__}: {describe_mismatch(problems)}')
    module.load_state_dict(sd, strict=True)
