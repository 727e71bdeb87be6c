"""The paper's tables: FLOPs / params (reproduced from this project's configs),
ImageNet / CIFAR error rates and COCO mAP (as printed; nothing here measures them).

The model zoo (``mmcnv2.model_zoo``, ``model-index.yml``) is generated from
these tables; the figures are written here once.
"""
import os.path as osp
from typing import Callable, List, NamedTuple, Optional

from mmengine.config import Config

from mmcnv2.analysis.complexity import config_complexity


class PaperEntry(NamedTuple):
    """A model of the paper's tables and the config that builds it here."""
    name: str
    config: str
    table: str
    flops: float  # millions, as printed in the paper
    params: Optional[float]  # millions, as printed (None: not given)
    shape: tuple = (224, 224)
    # whether the config builds the paper's model (False: the paper gives no exact
    # architecture and the config is our reading of it, see README)
    exact: bool = True


PAPER_ENTRIES: List[PaperEntry] = [
    PaperEntry('CondenseNetV2-A', 'configs/imagenet/cnv2_a.py', '2/3/5', 46, 2.0),
    PaperEntry('CondenseNetV2-B', 'configs/imagenet/cnv2_b.py', '2/3/5', 146, 3.6),
    PaperEntry('CondenseNetV2-C', 'configs/imagenet/cnv2_c.py', '2/3/5', 309, 6.1),
    PaperEntry('SFR-ShuffleNetV2 0.5x', 'configs/imagenet/sfr_shufflenetv2_0.5x.py', '9/14', 43,
               1.4),
    PaperEntry('SFR-ShuffleNetV2 1.0x', 'configs/imagenet/sfr_shufflenetv2_1.0x.py', '3/9', 150,
               2.3),
    PaperEntry('SFR-ShuffleNetV2 1.5x', 'configs/imagenet/sfr_shufflenetv2_1.5x.py', '3/9', 306,
               3.5),
    PaperEntry('ShuffleNetV2+ Small', 'configs/imagenet/shufflenetv2plus_small.py', '5', 156, 5.1),
    PaperEntry('SFR-ShuffleNetV2+ Small', 'configs/imagenet/sfr_shufflenetv2plus_small.py',
               '5/11', 161, 5.2),
    PaperEntry('ShuffleNetV2+ Medium', 'configs/imagenet/shufflenetv2plus_medium.py', '5', 222,
               5.6),
    PaperEntry('SFR-ShuffleNetV2+ Medium', 'configs/imagenet/sfr_shufflenetv2plus_medium.py',
               '5/11', 229, 5.7),
    PaperEntry('CondenseNet-A', 'configs/imagenet/condensenet_a.py', '3/13', 56, 0.9),
    PaperEntry('CondenseNet-B', 'configs/imagenet/condensenet_b.py', '3/13', 132, 2.1),
    PaperEntry('CondenseNet-C', 'configs/imagenet/condensenet_c.py', '13/14', 274, 2.9),
    PaperEntry('CondenseNetV2-110 (C-10)', 'configs/cifar/cnv2_110_c10.py', '6', 41, 0.48,
               (32, 32), exact=False),
    PaperEntry('CondenseNetV2-146 (C-10)', 'configs/cifar/cnv2_146_c10.py', '6', 62, 0.78,
               (32, 32), exact=False),
]


class PaperAccuracy(NamedTuple):
    """A classification error rate the paper prints, and the config of that model here."""
    config: str
    dataset: str  # as mmpretrain's model index names it
    table: str
    top1_err: float  # %, as printed
    top5_err: Optional[float] = None  # %, as printed (None: not given)
    note: Optional[str] = None  # how the paper's figure relates to the config


_CONDENSENET_RECIPE = ("trained with CondenseNet's own recipe (the paper's Table 4), not the "
                       'Augmented Setting of this config')

PAPER_ACCURACIES: List[PaperAccuracy] = [
    PaperAccuracy('configs/imagenet/cnv2_a.py', 'ImageNet-1k', '3/5', 35.6, 15.8),
    PaperAccuracy('configs/imagenet/cnv2_b.py', 'ImageNet-1k', '3/5', 28.1, 9.7),
    PaperAccuracy('configs/imagenet/cnv2_c.py', 'ImageNet-1k', '5/14', 24.1, 7.3),
    PaperAccuracy('configs/imagenet/sfr_shufflenetv2_0.5x.py', 'ImageNet-1k', '14', 38.3, 17.0),
    PaperAccuracy('configs/imagenet/sfr_shufflenetv2_1.0x.py', 'ImageNet-1k', '3/14', 29.9, 10.9),
    PaperAccuracy('configs/imagenet/sfr_shufflenetv2_1.5x.py', 'ImageNet-1k', '3/14', 26.5, 8.6),
    PaperAccuracy('configs/imagenet/shufflenetv2plus_small.py', 'ImageNet-1k', '5', 25.9, 8.3),
    PaperAccuracy('configs/imagenet/sfr_shufflenetv2plus_small.py', 'ImageNet-1k', '5/15', 25.5,
                  8.2),
    PaperAccuracy('configs/imagenet/shufflenetv2plus_medium.py', 'ImageNet-1k', '5', 24.3, 7.4),
    PaperAccuracy('configs/imagenet/sfr_shufflenetv2plus_medium.py', 'ImageNet-1k', '5', 23.9,
                  7.3),
    PaperAccuracy('configs/imagenet/condensenet_a.py', 'ImageNet-1k', '3/14', 43.5, 20.2,
                  _CONDENSENET_RECIPE),
    PaperAccuracy('configs/imagenet/condensenet_b.py', 'ImageNet-1k', '3/14', 33.9, 13.1,
                  _CONDENSENET_RECIPE),
    PaperAccuracy('configs/imagenet/condensenet_c.py', 'ImageNet-1k', '14', 29.0, 10.0,
                  _CONDENSENET_RECIPE),
    PaperAccuracy('configs/cifar/cnv2_110_c10.py', 'CIFAR-10', '6', 4.65),
    PaperAccuracy('configs/cifar/cnv2_110_c100.py', 'CIFAR-100', '6', 23.94),
    PaperAccuracy('configs/cifar/cnv2_146_c10.py', 'CIFAR-10', '6', 4.35),
    PaperAccuracy('configs/cifar/cnv2_146_c100.py', 'CIFAR-100', '6', 22.52),
]


class PaperDetection(NamedTuple):
    """A row of the paper's Table 7 (COCO minival, 1x schedule) and its config here."""
    config: str
    backbone: str  # as the paper names it
    backbone_flops: float  # millions, at 224x224, as printed
    box_ap: float  # mAP (%), as printed


PAPER_DETECTIONS: List[PaperDetection] = [
    PaperDetection('configs/faster_rcnn_shufflenetv2_0.5x.py', 'ShuffleNetV2 0.5x', 41, 22.1),
    PaperDetection('configs/faster_rcnn_cnv2_a.py', 'CondenseNetV2-A', 46, 23.5),
    # printed "ShuffleNetV2 0.5x" a second time; 146M is the FLOPs of 1.0x
    PaperDetection('configs/faster_rcnn_shufflenetv2_1.0x.py', 'ShuffleNetV2 1.0x', 146, 27.4),
    PaperDetection('configs/faster_rcnn_cnv2_b.py', 'CondenseNetV2-B', 146, 27.9),
    PaperDetection('configs/faster_rcnn_mobilenetv2_1.0x.py', 'MobileNetV2 1.0x', 300, 30.6),
    PaperDetection('configs/faster_rcnn_shufflenetv2_1.5x.py', 'ShuffleNetV2 1.5x', 299, 30.2),
    PaperDetection('configs/faster_rcnn_sfr_shufflenetv2_1.5x.py', 'SFR-ShuffleNetV2 1.5x', 306,
                   30.7),
    PaperDetection('configs/faster_rcnn_cnv2_c.py', 'CondenseNetV2-C', 309, 31.4),
    PaperDetection('configs/retinanet_mobilenetv2_1.0x.py', 'MobileNetV2 1.0x', 300, 29.7),
    PaperDetection('configs/retinanet_shufflenetv2_1.5x.py', 'ShuffleNetV2 1.5x', 299, 29.1),
    PaperDetection('configs/retinanet_cnv2_c.py', 'CondenseNetV2-C', 309, 31.7),
]


def paper_table(root: str = '.', with_mmengine: bool = True,
                progress: Optional[Callable[[int, int, PaperEntry], None]] = None) -> List[dict]:
    """Count every :data:`PAPER_ENTRIES` model (deploy form) next to the paper.

    Args:
        root (str): The repository root the entries' configs are relative to.
        with_mmengine (bool): Also count with mmengine's counter.
        progress (callable, optional): Called as ``progress(k, n, entry)``
            after the ``k``-th of ``n`` entries is counted (``k`` from 1).

    Returns:
        list[dict]: one row per model with ``name``, ``table``, ``config``,
        ``flops``/``params`` (ours, paper's count), ``paper_flops``/
        ``paper_params``, their relative differences, and mmengine's counts.
        A model whose config is absent is reported with ``missing=True``.
    """
    rows = []
    for k, e in enumerate(PAPER_ENTRIES, start=1):
        row = dict(name=e.name, table=e.table, config=e.config, paper_flops=e.flops,
                   paper_params=e.params)
        path = osp.join(root, e.config)
        if not osp.exists(path):
            rows.append(dict(row, missing=True))
        else:
            r = config_complexity(Config.fromfile(path), e.shape, with_mmengine=with_mmengine)
            flops, params = r['paper_flops'] / 1e6, r['paper_params'] / 1e6
            row.update(flops=flops, params=params, flops_diff=flops / e.flops - 1,
                       params_diff=None if e.params is None else params / e.params - 1,
                       mmengine_flops=r.get('mmengine_flops', float('nan')) / 1e6,
                       mmengine_params=r.get('mmengine_params', float('nan')) / 1e6)
            rows.append(row)
        if progress is not None:
            progress(k, len(PAPER_ENTRIES), e)
    return rows


def format_table(rows: List[dict]) -> str:
    """A plain-text table of :func:`paper_table`'s rows."""
    lines = [f"{'model':<26}{'table':>6}{'FLOPs':>9}{'paper':>7}{'diff':>8}"
             f"{'params':>9}{'paper':>7}{'diff':>8}{'mmengine FLOPs':>16}"]
    for r in rows:
        if r.get('missing'):
            lines.append(f"{r['name']:<26}{r['table']:>6}   (config {r['config']} not found)")
            continue
        pd = '' if r['params_diff'] is None else f"{r['params_diff']:+.1%}"
        lines.append(
            f"{r['name']:<26}{r['table']:>6}{r['flops']:>8.2f}M{r['paper_flops']:>6g}M"
            f"{r['flops_diff']:>+8.1%}{r['params']:>8.3f}M{r['paper_params']:>6g}M{pd:>8}"
            f"{r['mmengine_flops']:>15.2f}M")
    return '\n'.join(lines)
