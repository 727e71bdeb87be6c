"""Accuracy per FLOP on the shipped data (``tools/compare.py``).

Each task trains one recipe, a demo config, with backbones of matched FLOPs:
ours (CondenseNetV2, SFR-ShuffleNetV2) against mmpretrain's ShuffleNetV2 and
MobileNetV2. Everything but the backbone stays as the config has it (data,
schedule, seed handling, neck and head),
the same for every backbone; the neck's or head's input channels follow the
backbone. ``SparsifyHook`` prunes ours and is left out for the
peers, which have nothing to prune.

Detection uses the demo's RetinaNet for every backbone: a three-level FPN fed
at strides 8, 16 and 32 (no P6/P7: the crowns are 9-108 px, median 40, on the
400 x 400 tiles) with square anchors of 16-101 px, and the demo's own
CondenseNetV2 as ours; this pyramid is also what lets mmpretrain's backbones,
which have no stride-4 output, plug in unchanged.

The FLOPs are matched at the task's input size, the paper's way
(:func:`mmcnv2.analysis.paper_complexity`, deploy form). mmpretrain's
ShuffleNetV2 only comes in 0.5x / 1.0x / 1.5x / 2.0x, so it sets the budget
and the others are sized to it:

* ``det`` (RetinaNet on the NEON tree tiles, 400 x 400): a CondenseNetV2 in
  the demo's own backbone (132.2M backbone FLOPs), SFR-ShuffleNetV2 0.5x (136.3M),
  ShuffleNetV2 0.5x (131.9M), MobileNetV2 0.25x (123.5M; the next widths
  ``make_divisible`` allows give 187M). Where a backbone ends with a wide 1x1
  convolution (ShuffleNetV2, MobileNetV2) that is its stride-32 output, so no
  backbone computes what the detector does not use.
* ``cls`` (scikit-learn digits, 32 x 32): CondenseNetV2 in the paper's CIFAR
  layout with depths (2, 2, 3) (6.43M), SFR-ShuffleNetV2 1.5x (6.24M),
  ShuffleNetV2 1.5x (6.07M), MobileNetV2 1.0x (6.25M) -- the paper's
  Table 7 trio. mmpretrain builds no CIFAR form of its peers: they keep their
  ImageNet stems (stride 4 before the first stage) on the 32 x 32 digits.
"""
import copy
import os.path as osp
import time
from typing import Dict, Optional

from mmengine.config import Config

from mmcnv2.apis.runner import train
from mmcnv2.models.build import build_model

from .demo import DEMOS, schedule_options

#: task -> the demo whose recipe all backbones train with, the input the costs are
#: counted at, the model part whose ``in_channels`` follows the backbone, and the metrics
#: reported (the first is the headline one of the plot).
TASKS = {
    'det': dict(demo='det', input_shape=(3, 400, 400), channels_key='neck',
                metrics=('coco/bbox_mAP_50', 'coco/bbox_mAP')),
    'cls': dict(demo='cls', input_shape=(3, 32, 32), channels_key='head',
                metrics=('accuracy/top1', )),
}

_BN = dict(norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False)

#: task -> backbone name -> (backbone config, ours?); ``None``: the task config's own backbone
BACKBONES = {
    'det': {
        'CondenseNetV2': (None, True),  # the detection demo's own backbone
        'SFR-ShuffleNetV2-0.5x': (dict(type='SFRShuffleNetV2', arch='0.5x', out_indices=(1, 2, 4),
                                       init_cfg=None, **_BN), True),
        'ShuffleNetV2-0.5x': (dict(type='mmpretrain.ShuffleNetV2', widen_factor=0.5,
                                   out_indices=(0, 1, 3), **_BN), False),
        'MobileNetV2-0.25x': (dict(type='mmpretrain.MobileNetV2', widen_factor=0.25,
                                   out_indices=(2, 4, 7), **_BN), False),
    },
    'cls': {
        'CondenseNetV2': (dict(type='CondenseNetV2', arch=dict(
            depths=(2, 2, 3), growth_rates=(8, 16, 32), condense_factor=4, sparse_factor=4,
            groups=4, bottleneck=4, stem_stride=1, hswish_from=3, se_from=3)), True),
        'SFR-ShuffleNetV2-1.5x': (dict(type='SFRShuffleNetV2', arch='1.5x'), True),
        'ShuffleNetV2-1.5x': (dict(type='ShuffleNetV2', widen_factor=1.5), False),
        'MobileNetV2-1.0x': (dict(type='MobileNetV2', widen_factor=1.0), False),
    },
}


def _check(task: str, backbone: Optional[str] = None):
    if task not in TASKS:
        raise ValueError(f'task must be one of {sorted(TASKS)}, got {task!r}')
    if backbone is not None and backbone not in BACKBONES[task]:
        raise ValueError(f'backbone of task {task!r} must be one of {sorted(BACKBONES[task])}, '
                         f'got {backbone!r}')


def task_config(task: str, root: str = '.') -> str:
    """Path of the config whose recipe ``task`` trains every backbone with."""
    _check(task)
    return osp.join(root, DEMOS[TASKS[task]['demo']]['config'])


def is_ours(task: str, backbone: str) -> bool:
    """Whether ``backbone`` of ``task`` is one of mmcnv2's (sparsified, fused)."""
    _check(task, backbone)
    return BACKBONES[task][backbone][1]


def backbone_channels(backbone_cfg: dict, scope: str, input_shape=(3, 64, 64)):
    """Channels of the outputs of a backbone config (probed with a forward pass)."""
    import torch

    model = build_model(backbone_cfg, scope)
    model.eval()
    with torch.no_grad():
        outs = model(torch.zeros(1, *input_shape))
    outs = outs if isinstance(outs, (tuple, list)) else (outs, )
    return [int(o.shape[1]) for o in outs]


def variant_options(task: str, backbone: str, seed: int = 0, epochs: Optional[int] = None,
                    root: str = '.') -> dict:
    """``cfg_options`` that train ``backbone`` with ``task``'s recipe.

    Args:
        task (str): ``'det'`` or ``'cls'``.
        backbone (str): A key of ``BACKBONES[task]``.
        seed (int): ``randomness.seed``.
        epochs (int, optional): Train this many epochs instead of the config's,
            with its schedule stretched to match (see :func:`schedule_options`).
        root (str): Repository root.

    Returns:
        dict: Options for :func:`mmcnv2.apis.runner.train`.

    Example:
        >>> opts = variant_options('cls', 'MobileNetV2-1.0x', seed=3)
        >>> opts['model.backbone']['type'], opts['model.head.in_channels'], opts['randomness.seed']
        ('MobileNetV2', 1280, 3)
        >>> [h['type'] for h in opts['custom_hooks']]  # no SparsifyHook: nothing to prune
        []
    """
    _check(task, backbone)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f'seed must be an int, got {seed!r}')
    config = task_config(task, root)
    cfg = Config.fromfile(config)
    options = {'randomness.seed': seed}
    spec, ours = BACKBONES[task][backbone]
    spec = cfg.model.backbone.to_dict() if spec is None else spec
    channels = backbone_channels(spec, cfg.default_scope)
    options['model.backbone'] = dict(copy.deepcopy(spec), _delete_=True)
    key = TASKS[task]['channels_key']
    options[f'model.{key}.in_channels'] = channels if key == 'neck' else channels[-1]
    if not ours:
        options['custom_hooks'] = [h for h in cfg.get('custom_hooks', [])
                                   if h['type'] != 'SparsifyHook']
    if epochs is not None:
        options.update(schedule_options(cfg, epochs))
    return options


def train_variant(task: str, backbone: str, seed: int, work_dir: str, epochs: Optional[int] = None,
                  root: str = '.', cfg_options: Optional[dict] = None) -> Dict[str, float]:
    """Train one backbone of ``task`` with one seed; return its final validation metrics.

    Returns:
        dict: The task's metrics (validation after the last epoch) and
        ``train_s``, the wall time of training.
    """
    options = variant_options(task, backbone, seed, epochs, root)
    options.update(cfg_options or {})
    start = time.perf_counter()
    runner = train(task_config(task, root), work_dir=work_dir, cfg_options=options)
    seconds = time.perf_counter() - start
    hub = runner.message_hub
    metrics = {}
    for name in TASKS[task]['metrics']:
        scalar = hub.log_scalars.get(f'val/{name}')
        if scalar is None:
            raise RuntimeError(f'{task}/{backbone}: no validation result {name!r} after training; '
                               'the config must validate after its last epoch')
        metrics[name] = float(scalar.current())
    metrics['train_s'] = seconds
    return metrics
