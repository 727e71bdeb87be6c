"""Import checkpoints of the authors' CondenseNetV2 release.

Two formats exist (their key layouts are described below and exercised by the
release-format fixtures under ``tests/data/official_tiny``):

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
release's (block 3 of 5). The group count ``G`` is that of the 3x3
convolutions; the condense factor ``C`` and sparse factor ``S`` are read off
the converted layers' shapes, or, in a training checkpoint, off the masks and
the release's ``_stage`` counters (a layer at stage ``s`` has pruned
``s * candidates / F`` candidates of every group); a checkpoint whose masks are
all dense (stage 0) does not tell them, and needs the model config. A training
checkpoint keeps its masks; the stage of every layer is derived from its mask
(which is what the release's forward uses), so training continues from exactly
where it was.
"""
import copy
import re
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch

from ..models.backbones.condensenet_v2 import CondenseNetV2
from ..models.build import build_model
from ..models.forms import CheckpointMismatchError, strip_module_prefix
from .files import load_state_dict_strict, save_checkpoint_file

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


def infer_arch(sd: Dict[str, torch.Tensor], factors: Optional[dict] = None) -> dict:
    """Read the architecture of an official state dict off its tensor shapes.

    Args:
        sd (dict): The official state dict (no ``module.`` prefixes).
        factors (dict, optional): ``condense_factor`` and ``sparse_factor``
            to use where the state dict does not tell them (a training
            checkpoint whose masks are all dense), e.g. from the config the
            user names; where it does tell them, they must agree.

    Returns:
        dict: ``arch`` (a name of :attr:`CondenseNetV2.arch_settings` or a
        dict), ``deploy``, ``num_classes``, ``fc_channels``, ``se_reduction``,
        ``in_channels``.

    Raises:
        OfficialCheckpointError: if the state dict is inconsistent, or does
            not tell a factor and ``factors`` does not give it.
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
        condense = _factor_from_shapes(p + 'conv_1.index', sd[p + 'conv_1.index'].numel(),
                                       in_channels0, groups)
        sparse = _factor_from_shapes(p + 'sfr.conv.weight', sd[p + 'sfr.conv.weight'].shape[0],
                                     in_channels0, groups)
    else:
        condense = _factor_from_masks(sd, 'conv_1', groups)
        sparse = _factor_from_masks(sd, 'sfr', groups)
    given = factors or {}
    resolved = []
    for name, found in (('condense_factor', condense), ('sparse_factor', sparse)):
        if found is None and given.get(name) is None:
            raise OfficialCheckpointError(
                f'the {name} cannot be read off this training checkpoint: every '
                f'{"LGC" if name == "condense_factor" else "SFR"} mask is dense (stage 0), '
                'which any factor fits; give the model config it was trained with (tools/'
                'import_official.py --config CONFIG, or import_official(model_cfg=...))')
        if found is not None and given.get(name) not in (None, found):
            raise OfficialCheckpointError(
                f'the checkpoint has {name} {found}, the given config {given[name]}')
        resolved.append(found if found is not None else given[name])
    condense, sparse = resolved
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


def _factor_from_shapes(name: str, kept: int, channels: int, groups: int) -> int:
    """The factor ``F`` of a converted layer that keeps ``kept = channels * groups / F``."""
    if kept < 1 or (channels * groups) % kept:
        raise OfficialCheckpointError(
            f'{name}: {kept} kept connections do not divide {channels} channels x {groups} '
            'groups: not a converted CondenseNetV2 layer')
    return channels * groups // kept


def _pruned_per_group(name: str, value: torch.Tensor, part: str, groups: int) -> int:
    """How many candidates every group of an official ``part`` layer has pruned, read off
    its ``_mask``; checks that the mask is the same within every group (LGC: output ``o``
    is in group ``o % G``; SFR: input ``j`` is in group ``j % G``) and that every group has
    pruned as many."""
    mask = value.reshape(value.shape[0], value.shape[1], -1)[:, :, 0] != 0
    conn = mask if part == 'conv_1' else mask.t()              # (members, candidates)
    rows, cands = conn.shape
    if rows % groups:
        raise OfficialCheckpointError(f'{name}: {rows} rows do not split into {groups} groups')
    per_group = conn.view(rows // groups, groups, cands)
    if not bool((per_group == per_group[:1]).all()):
        raise OfficialCheckpointError(
            f'{name}: mask is not uniform within its groups (groups {groups}, read off the '
            '3x3 convolutions)')
    pruned = (~per_group[0]).sum(1)
    if not bool((pruned == pruned[0]).all()):
        raise OfficialCheckpointError(
            f'{name}: the groups have pruned different numbers of connections {pruned.tolist()}')
    return int(pruned[0])


def _factor_from_masks(sd: Dict[str, torch.Tensor], part: str, groups: int) -> Optional[int]:
    """The factor of every ``part`` (``'conv_1'``: LGC, ``'sfr'``) layer of a training state
    dict, from its mask and the release's ``_stage`` counter; None if every mask is dense."""
    found = {}
    for key, value in sd.items():
        m = _LAYER.match(key)
        if m is None or m.group(3) != part or m.group(4) != '_mask':
            continue
        pruned = _pruned_per_group(key, value, part, groups)
        cands = value.shape[1] if part == 'conv_1' else value.shape[0]
        stage_key = key[:-len('_mask')] + '_stage'
        stage = int(sd[stage_key].reshape(-1)[0]) if stage_key in sd else None
        if pruned == 0 and not stage:
            continue  # dense: any factor fits
        if not stage or not pruned or (stage * cands) % pruned or stage * cands // pruned <= stage:
            raise OfficialCheckpointError(
                f'{key}: {pruned} of {cands} candidates pruned per group at stage {stage} '
                f'({stage_key}) fit no factor')
        found[key] = stage * cands // pruned
    if len(set(found.values())) > 1:
        raise OfficialCheckpointError(
            f'the {part} layers have different factors: {sorted(set(found.values()))}')
    return next(iter(found.values()), None)


def _stage_from_mask(name, mask, factor, groups, part):
    """Stage of an official ``part`` layer, derived from its mask; checks its layout."""
    pruned = _pruned_per_group(name, mask, part, groups)
    cands = mask.shape[1] if part == 'conv_1' else mask.shape[0]
    delta = cands // factor
    if delta < 1 or pruned % delta:
        raise OfficialCheckpointError(
            f'{name}: {pruned} pruned connections per group are not a multiple of {delta} '
            f'(candidates {cands} / factor {factor})')
    return pruned // delta


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
            out[prefix + ours + '.mask'] = value.reshape(
                value.shape[0], value.shape[1], -1)[:, :, 0] != 0
            out[prefix + ours + '.stage'] = torch.tensor(
                _stage_from_mask(key, value, factors[part], groups, part))
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


def _config_factors(model_cfg: Optional[dict]) -> Optional[dict]:
    """``condense_factor`` and ``sparse_factor`` of a model config's CondenseNetV2 backbone."""
    if model_cfg is None:
        return None
    arch = model_cfg.get('backbone', {}).get('arch')
    if isinstance(arch, str):
        arch = CondenseNetV2.arch_settings.get(arch.lower())
    if not isinstance(arch, dict):
        return None
    return {name: arch.get(name) for name in ('condense_factor', 'sparse_factor')}


def import_official(src: str, dst: str = None, source: str = 'ema', model_cfg: dict = None) -> dict:
    """Convert an official checkpoint into an mmpretrain checkpoint.

    The result is loaded strictly into the model it describes (every key
    found, every shape right) before it is saved.

    Args:
        src (str): Official checkpoint (training or converted).
        dst (str, optional): Where to save ``{'state_dict', 'meta'}``.
        source (str): ``'ema'`` or ``'model'``; see :func:`select_state_dict`.
        model_cfg (dict, optional): Model config to load into (e.g. from
            ``configs/imagenet/cnv2_a.py``); defaults to the inferred one. Its
            backbone's factors are used where the checkpoint does not tell them
            (a training checkpoint at stage 0).

    Returns:
        dict: ``state_dict``, ``meta`` and the built ``model``.
    """
    sd, entry = select_state_dict(load_official(src), source)
    info = infer_arch(sd, _config_factors(model_cfg))
    state_dict = convert_state_dict(sd, info)
    if model_cfg is not None:
        cfg = copy.deepcopy(dict(model_cfg))
        cfg['backbone'] = dict(cfg['backbone'], deploy=info['deploy'])
    else:
        cfg = classifier_config(info)
    model = build_model(cfg, 'mmpretrain')
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
        save_checkpoint_file(dict(state_dict=state_dict, meta=meta), dst, [src], force=True)
    return dict(state_dict=state_dict, meta=meta, model=model)
