"""Strict loading of ImageNet weights into a sparse backbone (training or deploy form).

What a backbone's ``init_weights`` does with ``init_cfg=dict(type='Pretrained',
checkpoint=..., prefix=...)``: every weight must be found, and a fully sparse
training-form checkpoint is condensed on the fly for a deploy-form backbone.
"""
import os.path as osp
import re
from collections import OrderedDict
from typing import Optional

import torch.nn as nn

from .forms import (DEPLOY, TRAINING, CheckpointFormError, CheckpointMismatchError,
                    compare_state_dicts, describe_mismatch, read_checkpoint, state_dict_form,
                    state_dict_of)
from .layers import unfinished_sparsification


class PretrainedMismatchError(CheckpointMismatchError):
    """A pretrained checkpoint does not cover the backbone exactly."""


class PretrainedNotFoundError(FileNotFoundError):
    """The pretrained weights an ``init_cfg`` names do not exist."""


def imagenet_config_of(checkpoint: str) -> Optional[str]:
    """The ImageNet config whose checkpoint ``checkpoints/<name>_imagenet.pth`` is, by the
    naming of mmcnv2's detection configs: ``configs/imagenet/<name>.py`` (or None).

    Example:
        >>> imagenet_config_of('checkpoints/cnv2_c_imagenet.pth')
        'configs/imagenet/cnv2_c.py'
    """
    name = re.match(r'(.+)_imagenet\.pth$', osp.basename(checkpoint))
    return f'configs/imagenet/{name.group(1)}.py' if name else None


def missing_pretrained_message(checkpoint: str, backbone_type: Optional[str] = None,
                               imagenet_config: Optional[str] = None) -> str:
    """What to do when the pretrained weights ``checkpoint`` do not exist.

    Args:
        checkpoint (str): The missing file.
        backbone_type (str, optional): The backbone's type; CondenseNetV2
            weights can also be imported from the authors' release.
        imagenet_config (str, optional): The ImageNet config that trains
            them, if there is one.

    Example:
        >>> print(missing_pretrained_message('checkpoints/cnv2_c_imagenet.pth')[:60])
        pretrained weights not found: checkpoints/cnv2_c_imagenet.pt
    """
    if imagenet_config:
        ways = [f'train the ImageNet classifier of this backbone (python tools/train.py '
                f'{imagenet_config}) and copy its checkpoint to {checkpoint}']
    else:
        ways = ['train an ImageNet classifier with this backbone (configs/imagenet/ of mmcnv2 '
                "has one for each mmcnv2 backbone, mmpretrain's configs for its own) and copy "
                f'its checkpoint to {checkpoint}']
    if backbone_type in (None, 'CondenseNetV2'):
        ways.append("for CondenseNetV2, import the authors' released ImageNet checkpoint: "
                    f'python tools/import_official.py OFFICIAL.pth.tar {checkpoint}')
    where = '' if osp.isabs(checkpoint) else (
        f', looked for as {osp.abspath(checkpoint)}: a relative path is read from the working '
        'directory')
    return (f"pretrained weights not found: {checkpoint} (the backbone's init_cfg{where}). To "
            'get them, ' + '; or, '.join(ways) + '. To train from scratch instead, pass '
            '--cfg-options model.backbone.init_cfg=None')


def backbone_state_dict(checkpoint: str, prefix: Optional[str] = 'backbone.',
                        map_location='cpu') -> 'OrderedDict':
    """The ``prefix``-ed part of a checkpoint's state dict, prefix removed.

    Files are read by :func:`~mmcnv2.models.forms.read_checkpoint` (local
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
        PretrainedNotFoundError: if a local ``checkpoint`` does not exist; the
            message says how to make it and how to train from scratch.
        PretrainedMismatchError: on any missing or unexpected key or shape, a
            deploy-form checkpoint for a training-form backbone, or a
            checkpoint that has not finished sparsifying for a deploy-form one.
    """
    if '://' not in checkpoint and not osp.exists(checkpoint):
        raise PretrainedNotFoundError(missing_pretrained_message(
            checkpoint, type(backbone).__name__, imagenet_config_of(checkpoint)))
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
        unfinished = unfinished_sparsification(twin)
        if unfinished:
            raise PretrainedMismatchError(
                f'{checkpoint} has not finished sparsifying ({unfinished}); fine-tune it with '
                'deploy=False under SparsifyHook')
        twin.switch_to_deploy()
        sd = twin.state_dict()
    _strict_load(backbone, sd, checkpoint)


def _strict_load(module: nn.Module, sd, checkpoint: str):
    problems = compare_state_dicts(module.state_dict(), sd)
    if any(problems.values()):
        raise PretrainedMismatchError(
            f'{checkpoint} does not match {type(module).__name__}: {describe_mismatch(problems)}')
    module.load_state_dict(sd, strict=True)
