"""Import checkpoints of the authors' CondenseNetV2 release.

Two formats exist (key lists: ``shared/notes/official_keys``):

* the *training* checkpoint, a dict with ``state_dict`` and/or
  ``state_dict_ema`` (keys with or without ``module.``), whose LGC/SFR layers
  hold dense weights, float ``_mask`` buffers and ``_stage``/``_count``
  counters, at any point of the schedule;
* the *converted* release, a bare state dict whose LGC layers hold
  ``conv_1.index`` LongTensors and whose SFR layers hold dense 0/1
  ``sfr.index`` matrices (one 1 per row).

Both become state dicts of an mmpretrain ``ImageClassifier`` with a
:class:`~mmcnv2.models.CondenseNetV2` backbone (training or deploy form) and a
:class:`~mmcnv2.models.CondenseNetV2ClsHead`. The architecture is read off the
tensor shapes; the one thing shapes cannot tell, where h-swish starts, is the
release's (block 3 of 5). A training checkpoint keeps its masks; the stage of
every layer is derived from its mask (which is what the release's forward
uses), so training continues from exactly where it was.
"""
import copy
import re
from collections import OrderedDict
from typing import Dict, Tuple

import torch

from ..models.backbones.condensenet_v2 import CondenseNetV2
from ..models.forms import CheckpointMismatchError, strip_module_prefix
from .files import load_state_dict_strict

_LAYER = re.compile(r'^features\.denseblock_(\d+)\.denselayer_(\d+)\.(conv_1|conv_2|se|sfr)\.(.+)$')
_SIMPLE = {
    'features.init_conv.weight': 'backbone.stem.weight',
    'features.se_last.fc.0.weight': 'head.se.fc1.weight',
    'features.se_last.fc.2.weight': 'head.se.fc2.weight',
    'fc.weight': 'head.fc.weight',
    'fc.bias': 'head.fc.bias',
    'classifier.weight': 'head.classifier.weight',
    'classifier.bias': 'head.classifier.bias',
}
_NORM_SUFFIXES = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')


class OfficialCheckpointError(ValueError):
    """The file is not a checkpoint of the official CondenseNetV2 release."""


def load_official(path: str) -> dict:
    """``torch.load`` an official checkpoint safely (``weights_only=True``)."""
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # pickle errors, zip errors, unsupported globals
        raise OfficialCheckpointError(
            f'{path} could not be read as a PyTorch state dict with weights_only=True '
            f'({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}); the official '
            'release stores plain tensors, so this file is corrupt or not an official '
            'CondenseNetV2 checkpoint') from None
    if not isinstance(obj, dict):
        raise OfficialCheckpointError(f'{path} holds a {type(obj).__name__}, not a state dict')
    return obj


def select_state_dict(obj: dict, source: str = 'ema') -> Tuple[Dict[str, torch.Tensor], str]:
    """Pick the state dict to import from an official checkpoint object.

    Args:
        obj (dict): What :func:`load_official` returned.
        source (str): ``'ema'`` prefers ``state_dict_ema`` (as the release's
            converter does), ``'model'`` prefers ``state_dict``.

    Returns:
        tuple: The state dict without ``module.`` prefixes, and which entry
        it came from (``'state_dict_ema'``, ``'state_dict'`` or ``'bare'``).
    """
    if source not in ('ema', 'model'):
        raise ValueError(f"source must be 'ema' or 'model', got {source!r}")
    if 'state_dict' in obj or 'state_dict_ema' in obj:
        order = ['state_dict_ema', 'state_dict'] if source == 'ema' else ['state_dict', 'state_dict_ema']
        entry = next(k for k in order if k in obj)
        sd = obj[entry]
    else:
        entry, sd = 'bare', obj
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise OfficialCheckpointError(f"the checkpoint's {entry} entry is not a dict of tensors")
    sd = strip_module_prefix(sd)
    if 'features.init_conv.weight' not in sd:
        raise OfficialCheckpointError(
            'no key features.init_conv.weight: this is not an official CondenseNetV2 checkpoint')
    return sd, entry


def infer_arch(sd: Dict[str, torch.Tensor]) -> dict:
    """Read the architecture of an official state dict off its tensor shapes.

    Returns:
        dict: ``arch`` (a name of :attr:`CondenseNetV2.arch_settings` or a
        dict), ``deploy``, ``num_classes``, ``fc_channels``, ``se_reduction``,
        ``in_channels``.
    """
    has_mask = any(k.endswith('._mask') for k in sd)
    has_index = any(k.endswith('conv_1.index') for k in sd)
    if has_mask == has_index:
        raise OfficialCheckpointError(
            'the state dict mixes training-form (_mask) and converted (index) layers'
            if has_mask else 'the state dict has neither _mask nor index buffers')
    layers = {}
    for k in sd:
        m = _LAYER.match(k)
        if m:
            layers.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    blocks = sorted(layers)
    if blocks != list(range(1, len(blocks) + 1)) or not blocks:
        raise OfficialCheckpointError(f'dense blocks are not numbered 1..n: {blocks}')
    depths, growths, se_blocks = [], [], []
    for b in blocks:
        ls = sorted(layers[b])
        if ls != list(range(1, len(ls) + 1)):
            raise OfficialCheckpointError(f'dense layers of block {b} are not numbered 1..n')
        depths.append(len(ls))
        p = f'features.denseblock_{b}.denselayer_1.'
        growths.append(sd[p + 'conv_2.conv.weight'].shape[0])
        if p + 'se.fc.0.weight' in sd:
            se_blocks.append(b - 1)
    p = 'features.denseblock_1.denselayer_1.'
    growth0 = growths[0]
    mid = sd[p + 'conv_2.conv.weight'].shape[1]
    bottleneck_channels = sd[p + 'conv_2.norm.weight'].shape[0]
    groups = bottleneck_channels // mid
    in_channels0 = sd['features.init_conv.weight'].shape[0]
    if has_index:
        condense = in_channels0 * groups // sd[p + 'conv_1.index'].numel()
        sparse = in_channels0 * groups // sd[p + 'sfr.conv.weight'].shape[0]
    else:  # every released arch uses C = S = G; masks at stage 0 cannot tell
        condense = sparse = groups
    arch = dict(depths=tuple(depths), growth_rates=tuple(growths), condense_factor=condense,
                sparse_factor=sparse, groups=groups, bottleneck=bottleneck_channels // growth0,
                stem_stride=2, hswish_from=min(2, len(depths)),
                se_from=se_blocks[0] if se_blocks else len(depths))
    if se_blocks != list(range(arch['se_from'], len(depths))):
        raise OfficialCheckpointError(f'SE must be used from some block on, found it in {se_blocks}')
    for name, setting in CondenseNetV2.arch_settings.items():
        if setting == arch:
            arch = name
            break
    num_features = sd['features.norm_last.weight'].shape[0]
    return dict(arch=arch, deploy=has_index, num_classes=sd['classifier.weight'].shape[0],
                fc_channels=sd['fc.weight'].shape[0], in_channels=num_features,
                se_reduction=num_features // sd['features.se_last.fc.0.weight'].shape[0])


def _stage_from_mask(name, mask, factor, groups, grouped_axis):
    """Stage of an official layer, derived from its mask; checks its layout."""
    conn = mask if grouped_axis == 0 else mask.t()              # (members, candidates)
    rows, cands = conn.shape
    per_group = conn.view(rows // groups, groups, cands)
    if not bool((per_group == per_group[:1]).all()):
        raise OfficialCheckpointError(f'{name}: mask is not uniform within its groups')
    pruned = (~per_group[0]).sum(1)
    delta = cands // factor
    if not bool((pruned == pruned[0]).all()) or int(pruned[0]) % delta:
        raise OfficialCheckpointError(
            f'{name}: pruned connections per group {pruned.tolist()} are not one multiple of '
            f'{delta} for every group')
    return int(pruned[0]) // delta


def convert_state_dict(sd: Dict[str, torch.Tensor], arch_info: dict) -> 'OrderedDict[str, torch.Tensor]':
    """Map an official state dict onto mmcnv2's ``ImageClassifier`` keys.

    Every official key is used, and unknown keys are an error.
    """
    arch = arch_info['arch']
    arch = CondenseNetV2.arch_settings[arch] if isinstance(arch, str) else arch
    factors = dict(conv_1=arch['condense_factor'], sfr=arch['sparse_factor'])
    groups = arch['groups']
    out = OrderedDict()
    for key, value in sd.items():
        if key in _SIMPLE:
            out[_SIMPLE[key]] = value
            continue
        if key.startswith('features.norm_last.') and key.rsplit('.', 1)[1] in _NORM_SUFFIXES:
            out['backbone.' + key[len('features.'):]] = value
            continue
        m = _LAYER.match(key)
        if m is None:
            raise OfficialCheckpointError(f'unexpected key in the official checkpoint: {key}')
        block, layer, part, rest = int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)
        prefix = f'backbone.stages.{block - 1}.layers.{layer - 1}.'
        ours = {'conv_1': 'conv1', 'conv_2': 'conv2', 'se': 'se', 'sfr': 'sfr'}[part]
        if part == 'se':
            rest = {'fc.0.weight': 'fc1.weight', 'fc.2.weight': 'fc2.weight'}.get(rest)
            if rest is None:
                raise OfficialCheckpointError(f'unexpected key in the official checkpoint: {key}')
        elif rest in ('_count', '_stage'):
            continue  # the stage is derived from the mask below
        elif rest == '_mask':
            mask = value.reshape(value.shape[0], value.shape[1], -1)[:, :, 0] != 0
            out[prefix + ours + '.mask'] = mask
            out[prefix + ours + '.stage'] = torch.tensor(
                _stage_from_mask(key, mask, factors[part], groups, 0 if part == 'conv_1' else 1))
            continue
        elif part == 'sfr' and rest == 'index':
            ones = value == 1
            if not bool(((value == 0) | ones).all()) or not bool((ones.sum(1) == 1).all()):
                raise OfficialCheckpointError(f'{key}: not a 0/1 matrix with one 1 per row')
            value = ones.long().argmax(1)
        out[prefix + ours + '.' + rest] = value
    return out


def classifier_config(arch_info: dict) -> dict:
    """The mmpretrain model config of an imported checkpoint."""
    return dict(
        type='ImageClassifier',
        backbone=dict(type='CondenseNetV2', arch=arch_info['arch'], deploy=arch_info['deploy']),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='CondenseNetV2ClsHead', num_classes=arch_info['num_classes'],
                  in_channels=arch_info['in_channels'], fc_channels=arch_info['fc_channels'],
                  se_reduction=arch_info['se_reduction'],
                  loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
                  topk=(1, 5)))


def import_official(src: str, dst: str = None, source: str = 'ema', model_cfg: dict = None) -> dict:
    """Convert an official checkpoint into an mmpretrain checkpoint.

    The result is loaded strictly into the model it describes (every key
    found, every shape right) before it is saved.

    Args:
        src (str): Official checkpoint (training or converted).
        dst (str, optional): Where to save ``{'state_dict', 'meta'}``.
        source (str): ``'ema'`` or ``'model'``; see :func:`select_state_dict`.
        model_cfg (dict, optional): Model config to load into (e.g. from
            ``configs/imagenet/cnv2_a.py``); defaults to the inferred one.

    Returns:
        dict: ``state_dict``, ``meta`` and the built ``model``.
    """
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    sd, entry = select_state_dict(load_official(src), source)
    info = infer_arch(sd)
    state_dict = convert_state_dict(sd, info)
    if model_cfg is not None:
        cfg = copy.deepcopy(dict(model_cfg))
        cfg['backbone'] = dict(cfg['backbone'], deploy=info['deploy'])
    else:
        cfg = classifier_config(info)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
    try:
        load_state_dict_strict(model, state_dict, 'the official checkpoint')
    except CheckpointMismatchError as e:
        raise OfficialCheckpointError(str(e)) from None
    stages = [int(m.stage) for _, m in model.backbone.sparse_layers() if not m.deploy]
    meta = dict(mmcnv2=dict(imported_from='official CondenseNetV2 release', entry=entry,
                            form='deploy' if info['deploy'] else 'training',
                            arch=info['arch'], model=cfg,
                            min_stage=min(stages) if stages else None))
    if dst is not None:
        torch.save(dict(state_dict=state_dict, meta=meta), dst)
    return dict(state_dict=state_dict, meta=meta, model=model)
