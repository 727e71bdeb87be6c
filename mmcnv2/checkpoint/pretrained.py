"""Strict loading of ImageNet weights into a sparse backbone (training or deploy form)."""
from collections import OrderedDict
from typing import Optional

import torch.nn as nn

from ..models.deploy import sparse_layers, switch_model_to_deploy


class PretrainedMismatchError(ValueError):
    """A pretrained checkpoint does not cover the backbone exactly."""


def _form(state_dict) -> Optional[str]:
    if any(k.endswith('.mask') for k in state_dict):
        return 'training'
    if any(k.endswith('.index') for k in state_dict):
        return 'deploy'
    return None


def backbone_state_dict(checkpoint: str, prefix: Optional[str] = 'backbone.',
                        map_location='cpu') -> 'OrderedDict':
    """The ``prefix``-ed part of a checkpoint's state dict, prefix removed.

    Files are read by mmengine's ``CheckpointLoader`` (local paths, URLs,
    ``open-mmlab://``...), with ``torch.load(weights_only=True)``.
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location=map_location)
    sd = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    sd = OrderedDict((k[7:] if k.startswith('module.') else k, v) for k, v in sd.items())
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
    src_form = _form(sd)
    layers = sparse_layers(backbone)
    dst_form = 'deploy' if layers and all(m.deploy for _, m in layers) else 'training'
    if src_form == 'deploy' and dst_form == 'training':
        raise PretrainedMismatchError(
            f'{checkpoint} holds a deploy-form (condensed) backbone; build the backbone with '
            'deploy=True to load it')
    if src_form == 'training' and dst_form == 'deploy':
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
    own = module.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f'{k}: {tuple(sd[k].shape)} vs {tuple(v.shape)}' for k, v in own.items()
              if k in sd and sd[k].shape != v.shape]
    if missing or unexpected or shapes:
        def few(items):
            return ', '.join(items[:5]) + (f' ... ({len(items)} in all)' if len(items) > 5 else '')
        raise PretrainedMismatchError(
            f'{checkpoint} does not match {type(module).__name__}: '
            + '; '.join(f'{what}: {few(items)}' for what, items in (
                ('missing', missing), ('unexpected', unexpected), ('shape mismatch', shapes))
                if items))
    module.load_state_dict(sd, strict=True)
