"""The two forms of a sparse model's weights, and the checks that keep them apart.

A model with learned-sparsity layers (LGC / SFR) has two state-dict forms:

* the *training* form: dense convolution weights plus a boolean ``mask`` and
  a ``stage`` counter per sparse layer;
* the *deploy* form: condensed group-convolution weights plus a LongTensor
  ``index`` per sparse layer (``tools/convert.py``, ``switch_to_deploy``).

Both forms load into a model only when it was built in the same form
(``deploy=False`` / ``deploy=True``), and loading one into the other would
leave weights at their random init. This module is the one place that tells
which form a checkpoint holds and compares a state dict with a module's, for
mmcnv2's own loaders and for the check every sparse backbone runs when
mmengine, mmdet or mmpretrain load weights into it; and it reads checkpoint
files (:func:`read_checkpoint`), for the backbones' ``Pretrained`` init and
for :mod:`mmcnv2.checkpoint`.
"""
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional

import torch

TRAINING = 'training'
DEPLOY = 'deploy'


class CheckpointMismatchError(ValueError):
    """A checkpoint (or state dict) does not fit the model it is loaded into."""


class CheckpointFormError(CheckpointMismatchError):
    """A checkpoint holds the other form (training / deploy) than the model's."""


class CheckpointReadError(ValueError):
    """A checkpoint file cannot be read (empty, truncated, corrupt, not a checkpoint)."""


class CheckpointNotFoundError(FileNotFoundError):
    """A checkpoint file does not exist."""


def read_checkpoint(path: str, map_location='cpu') -> dict:
    """Load a checkpoint file safely (``weights_only=True``).

    Local paths are read with ``torch.load``; URLs and ``open-mmlab://``-style
    names with mmengine's ``CheckpointLoader``.

    Returns:
        dict: The checkpoint (a ``state_dict``/``meta`` dict, or a bare state
        dict).

    Raises:
        CheckpointNotFoundError: if a local file does not exist.
        CheckpointReadError: if it cannot be read or is not a dict.

    Example:
        >>> read_checkpoint('no/such/file.pth')
        Traceback (most recent call last):
        ...
        mmcnv2.models.forms.CheckpointNotFoundError: checkpoint not found: no/such/file.pth
    """
    remote = '://' in str(path)
    if not remote:
        if not osp.exists(path):
            raise CheckpointNotFoundError(f'checkpoint not found: {path}')
        if osp.isdir(path):
            raise CheckpointReadError(f'{path} is a folder, not a checkpoint file')
        if osp.getsize(path) == 0:
            raise CheckpointReadError(f'{path} is empty (0 bytes): not a checkpoint; was its '
                                      'writing interrupted?')
    try:
        if remote:
            from mmengine.runner.checkpoint import CheckpointLoader  # heavy; URLs only
            obj = CheckpointLoader.load_checkpoint(path, map_location=map_location)
        else:
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # zip, pickle and unsupported-global errors
        first = str(e).strip().splitlines()[0] if str(e).strip() else ''
        raise CheckpointReadError(
            f'{path} could not be read as a PyTorch checkpoint with torch.load(weights_only=True) '
            f'({type(e).__name__}: {first}); the file is truncated, corrupt or not a '
            'checkpoint') from None
    if not isinstance(obj, dict):
        raise CheckpointReadError(f'{path} holds a {type(obj).__name__}, not a checkpoint dict')
    return obj


def strip_module_prefix(state_dict: Mapping) -> 'OrderedDict':
    """The state dict without the ``module.`` prefix DataParallel/DDP add to keys.

    Example:
        >>> list(strip_module_prefix({'module.stem.weight': 0, 'head.fc.bias': 1}))
        ['stem.weight', 'head.fc.bias']
    """
    return OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v)
                       for k, v in state_dict.items())


def state_dict_form(state_dict: Mapping) -> Optional[str]:
    """Which form the sparse layers of ``state_dict`` are in, told by their keys.

    A training-form sparse layer saves ``<layer>.mask`` and ``<layer>.stage``;
    a deploy-form one ``<layer>.index`` and ``<layer>.conv.weight``.

    Returns:
        str | None: ``'training'``, ``'deploy'``, or None when the state dict
        has no sparse layer.

    Raises:
        CheckpointFormError: if it holds layers of both forms.

    Example:
        >>> state_dict_form({'a.mask': 0, 'a.stage': 0, 'a.conv.weight': 0})
        'training'
        >>> state_dict_form({'a.index': 0, 'a.conv.weight': 0})
        'deploy'
        >>> state_dict_form({'fc.weight': 0}) is None
        True
    """
    keys = set(state_dict)
    training = [k for k in keys if k.endswith('.mask') and k[:-4] + 'stage' in keys]
    deploy = [k for k in keys if k.endswith('.index') and k[:-5] + 'conv.weight' in keys]
    if training and deploy:
        raise CheckpointFormError(
            'the state dict mixes training-form sparse layers (e.g. '
            f'{sorted(training)[0][:-5]}) and deploy-form ones (e.g. {sorted(deploy)[0][:-6]})')
    return TRAINING if training else DEPLOY if deploy else None


def checkpoint_state_dict(checkpoint: Mapping) -> Mapping:
    """The state dict of a loaded checkpoint: its ``state_dict`` entry, or the
    checkpoint itself when it is a bare state dict."""
    state_dict = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state_dict, Mapping):
        raise CheckpointMismatchError(
            f"the checkpoint's state_dict is a {type(state_dict).__name__}, not a dict")
    return state_dict


def state_dict_of(checkpoint: Mapping) -> 'OrderedDict':
    """A checkpoint's state dict without ``module.`` prefixes."""
    return strip_module_prefix(checkpoint_state_dict(checkpoint))


def checkpoint_form(checkpoint: Mapping) -> Optional[str]:
    """Which form a loaded checkpoint holds: ``meta['mmcnv2']['form']`` where
    mmcnv2 wrote it, else what :func:`state_dict_form` reads off the keys.

    Raises:
        CheckpointFormError: if the meta and the keys disagree, or the keys
            mix both forms.

    Example:
        >>> checkpoint_form({'state_dict': {'a.index': 0, 'a.conv.weight': 0},
        ...                  'meta': {'mmcnv2': {'form': 'deploy'}}})
        'deploy'
    """
    by_keys = state_dict_form(strip_module_prefix(checkpoint_state_dict(checkpoint)))
    meta = checkpoint.get('meta')
    by_meta = meta.get('mmcnv2', {}).get('form') if isinstance(meta, Mapping) else None
    if by_meta not in (TRAINING, DEPLOY):
        return by_keys
    if by_keys is not None and by_keys != by_meta:
        raise CheckpointFormError(f"the checkpoint's meta says {by_meta} form but its sparse "
                                  f'layers are in {by_keys} form')
    return by_meta


def compare_state_dicts(own: Mapping, incoming: Mapping,
                        ignore_missing: tuple = ()) -> Dict[str, List[str]]:
    """Keys ``own`` expects and ``incoming`` lacks, the reverse, and shape mismatches.

    Args:
        own (Mapping): The model's state dict.
        incoming (Mapping): The state dict to load.
        ignore_missing (tuple): Key suffixes whose absence is allowed.

    Returns:
        dict: ``missing``, ``unexpected`` and ``shape mismatch`` lists.
    """
    shapes = []
    for k, v in own.items():
        w = incoming.get(k)
        if w is not None and hasattr(w, 'shape') and tuple(w.shape) != tuple(v.shape):
            shapes.append(f'{k}: {tuple(w.shape)} in the checkpoint, {tuple(v.shape)} in the model')
    return {
        'missing': [k for k in own if k not in incoming and not k.endswith(ignore_missing)],
        'unexpected': [k for k in incoming if k not in own],
        'shape mismatch': shapes,
    }


def describe_mismatch(problems: Dict[str, List[str]]) -> str:
    """``'missing: a, b; unexpected: c'``, five keys per kind at most; '' when all match."""
    def few(items):
        return ', '.join(items[:5]) + (f' ... ({len(items)} in all)' if len(items) > 5 else '')
    return '; '.join(f'{what}: {few(items)}' for what, items in problems.items() if items)


def deploy_flag(prefix: str) -> str:
    """The config key of the ``deploy`` flag of the module loaded at ``prefix``.

    Example:
        >>> deploy_flag('module.backbone.')
        'model.backbone.deploy'
    """
    path = prefix[len('module.'):] if prefix.startswith('module.') else prefix
    return f'model.{path}deploy' if path else 'deploy'


def form_mismatch_message(name: str, prefix: str, incoming: str) -> str:
    """What to do when a ``name`` module at ``prefix`` gets weights of form ``incoming``."""
    value = incoming == DEPLOY
    built = TRAINING if value else DEPLOY
    flag = deploy_flag(prefix)
    where = f"under '{prefix}' " if prefix else ''
    return (f'the checkpoint holds the {incoming} form of {name} (the keys {where}are '
            f'{incoming}-form), but the model was built in the {built} form, so its weights '
            f'would stay random. Build it in the {incoming} form: --cfg-options {flag}={value} '
            f'on the command line, or cfg.{flag} = {value} in Python '
            "(mmcnv2's tools/test.py, tools/infer.py and tools/export_onnx.py read the form "
            'off the checkpoint themselves)')


def check_incoming_weights(module, state_dict: Mapping, prefix: str) -> None:
    """Refuse weights that would leave part of ``module`` unloaded or wrong.

    Called from ``_load_from_state_dict`` (which torch's and mmengine's
    ``load_state_dict`` call on every module, strict or not) with the state
    dict and the module's key prefix. Missing ``num_batches_tracked`` keys are
    allowed, as mmengine allows them.

    Raises:
        CheckpointFormError: if the weights are of the other form.
        CheckpointMismatchError: if there are none for ``module``, or keys are
            missing or unexpected, or shapes differ.
    """
    name = type(module).__name__
    incoming = OrderedDict((k[len(prefix):], v) for k, v in state_dict.items()
                           if k.startswith(prefix))
    if not incoming:
        raise CheckpointMismatchError(
            f'the checkpoint has no weights for {name} (no key starts with {prefix!r}), so it '
            'would keep random weights: the checkpoint is not one of this model')
    own = module.state_dict()
    incoming_form, own_form = state_dict_form(incoming), state_dict_form(own)
    if incoming_form is not None and own_form is not None and incoming_form != own_form:
        raise CheckpointFormError(form_mismatch_message(name, prefix, incoming_form))
    problems = compare_state_dicts(own, incoming, ignore_missing=('num_batches_tracked', ))
    if any(problems.values()):
        where = f" (keys under '{prefix}')" if prefix else ''
        raise CheckpointMismatchError(
            f'the checkpoint does not match {name}{where}: {describe_mismatch(problems)}')
