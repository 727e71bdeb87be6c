"""Checks that a run's datasets and pretrained weights exist, before anything is built.

Without them mmengine fails late and from deep inside (a pycocotools
traceback once the dataloader is built, "can not be found" once the weights
are loaded); these checks say which file is missing and what to do.
"""
import os.path as osp
from typing import List, Optional, Sequence

from mmengine.config import Config

from ..models.pretrained import imagenet_config_of, missing_pretrained_message

#: What each dataset type of mmcnv2's configs expects under its data root,
#: and the environment variable those configs read the root from.
DATASET_LAYOUTS = {
    'CocoDataset': ('COCO_ROOT', 'COCO 2017: annotations/instances_train2017.json, '
                    'annotations/instances_val2017.json, train2017/*.jpg, val2017/*.jpg'),
    'ImageNet': ('IMAGENET_ROOT', 'ImageNet-1k: train/<class>/*.JPEG, val/<class>/*.JPEG '
                 '(or flat train/, val/ with meta/train.txt, meta/val.txt)'),
}


class MissingInputsError(FileNotFoundError):
    """A dataset or the pretrained weights a config names do not exist."""


def _datasets(dataset_cfg) -> List[dict]:
    """The leaf dataset configs of a dataset config (wrappers unwrapped)."""
    if dataset_cfg is None:
        return []
    if 'datasets' in dataset_cfg:
        return [d for sub in dataset_cfg['datasets'] for d in _datasets(sub)]
    if 'dataset' in dataset_cfg:
        return _datasets(dataset_cfg['dataset'])
    return [dataset_cfg]


def _join(root: str, path: str) -> str:
    return path if not root or osp.isabs(path) else osp.join(root, path)


def dataset_problems(cfg: Config, splits: Sequence[str]) -> List[str]:
    """Missing files of the datasets of ``<split>_dataloader`` for every split.

    Only the dataset types of :data:`DATASET_LAYOUTS` are checked (others may
    download or generate their data).
    """
    problems = []
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        for dataset in _datasets(loader.get('dataset')):
            kind = str(dataset.get('type')).split('.')[-1]  # 'mmdet.CocoDataset' too
            if kind not in DATASET_LAYOUTS:
                continue
            root = dataset.get('data_root', '') or ''
            if '://' in root:  # remote storage: not ours to check
                continue
            paths = []
            if dataset.get('ann_file'):
                paths.append(_join(root, dataset['ann_file']))
            prefix = dataset.get('data_prefix') or dataset.get('split') or ''
            for value in (prefix.values() if isinstance(prefix, dict) else [prefix]):
                if value:
                    paths.append(_join(root, value))
            missing = [p for p in ([root] if root else []) + paths if not osp.exists(p)]
            if missing:
                env, layout = DATASET_LAYOUTS[kind]
                problems.append(
                    f'{split} data not found: {missing[0]} does not exist ({kind} with '
                    f'data_root {root!r}). Expected under the data root: {layout}. Put the data '
                    f'there, or set {env}=/path/to/it (mmcnv2\'s configs read it), or pass '
                    f'--cfg-options {split}_dataloader.dataset.data_root=/path/to/it/')
    return problems


def imagenet_config(cfg: Config, checkpoint: str) -> Optional[str]:
    """The ImageNet config of mmcnv2 that trains ``checkpoint``, if it exists next to
    ``cfg``'s file (``configs/imagenet/<name>.py`` for ``checkpoints/<name>_imagenet.pth``)."""
    name = imagenet_config_of(checkpoint)
    if not name or not cfg.filename:
        return None
    folder = osp.dirname(osp.abspath(cfg.filename))
    while osp.basename(folder) != 'configs':
        if osp.dirname(folder) == folder:
            return None
        folder = osp.dirname(folder)
    return name if osp.isfile(osp.join(osp.dirname(folder), name)) else None


def pretrained_problems(cfg: Config) -> List[str]:
    """Missing local files named by ``Pretrained`` init configs of the model."""
    problems = []

    def visit(node):
        if isinstance(node, dict):
            init = node.get('init_cfg')
            inits = init if isinstance(init, list) else [init]
            for item in inits:
                if isinstance(item, dict) and item.get('type') == 'Pretrained':
                    path = item.get('checkpoint')
                    if isinstance(path, str) and '://' not in path and not osp.exists(path):
                        problems.append(missing_pretrained_message(
                            path, node.get('type'), imagenet_config(cfg, path)))
            for value in node.values():
                visit(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                visit(value)

    visit(cfg.get('model'))
    return problems


def check_inputs(cfg: Config, splits: Sequence[str] = ('train', 'val'),
                 pretrained: bool = True):
    """Raise :class:`MissingInputsError` listing every missing dataset file and
    (with ``pretrained``) pretrained-weights file of ``cfg``; the message says
    where each is expected and how to provide it."""
    problems = dataset_problems(cfg, splits) + (pretrained_problems(cfg) if pretrained else [])
    if problems:
        raise MissingInputsError('\n  '.join(['the run cannot start:'] + problems))
