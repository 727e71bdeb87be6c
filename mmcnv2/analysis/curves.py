"""Sparsification curves of a training run, read from mmengine's ``scalars.json``.

mmengine's ``LocalVisBackend`` (the default visualization backend) writes every
logged scalar to ``<work_dir>/<timestamp>/vis_data/scalars.json``, one JSON record a
line: training records carry ``iter`` (and ``epoch`` in epoch-based loops) and, under
:class:`~mmcnv2.engine.SparsifyHook`, ``density_lgc``, ``density_sfr`` and
``live_mflops``; validation records carry the metrics (``accuracy/top1``,
``coco/bbox_mAP``, ...) with ``step`` = the epoch (epoch-based loops, mmengine's
default ``log_metric_by_epoch=True``) or the iteration.
"""
import glob
import json
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple

SPARSITY_KEYS = ('density_lgc', 'density_sfr', 'live_mflops')
_PREFERRED_METRICS = ('accuracy/top1', 'coco/bbox_mAP')
_NOT_METRICS = ('step', 'time', 'data_time', 'iter', 'epoch', 'memory')


def _read_records(file: str) -> Tuple[List[dict], List[dict]]:
    """(training records with a SparsifyHook scalar, validation records) of a scalars.json."""
    train, val = [], []
    with open(file) as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                (train if 'iter' in record else val).append(record)
    return [r for r in train if any(k in r for k in SPARSITY_KEYS)], val


def find_scalars(path: str) -> str:
    """``path`` if a file, else the newest training run's ``scalars.json`` in a work dir.

    A work dir holds one ``<timestamp>/vis_data/scalars.json`` per run of a Runner
    in it; runs without :class:`~mmcnv2.engine.SparsifyHook` records (an evaluation
    after training, a run with no sparse layer) are passed over.

    Raises:
        FileNotFoundError: if ``path`` is neither a file nor a work dir holding
            ``<timestamp>/vis_data/scalars.json``.
        ValueError: if no run in the work dir logged the hook's scalars.
    """
    if osp.isfile(path):
        return path
    runs = sorted(glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
    if not runs:
        raise FileNotFoundError(
            f'no <timestamp>/vis_data/scalars.json under {path!r}: pass a work dir of a run '
            "logged with mmengine's LocalVisBackend (the default visualizer) or the file")
    for file in reversed(runs):
        if _read_records(file)[0]:
            return file
    raise ValueError(f'no run under {path!r} logged {"/".join(SPARSITY_KEYS)}: was it '
                     f'trained with SparsifyHook? (read {len(runs)} scalars.json)')


def _iters_per_epoch(train: List[dict]) -> int:
    """The smallest epoch length consistent with every logged (epoch, iter) pair.

    A record of epoch ``e`` at global iteration ``i`` means ``(e - 1) * n < i <= e * n``;
    the bound ``n >= i / e`` is met with equality by the last iteration of an epoch, which
    LoggerHook logs whenever its interval divides the epoch length.
    """
    return max(math.ceil(r['iter'] / r['epoch']) for r in train)


def load_sparsification_curves(path: str, metric: Optional[str] = None,
                               log_metric_by_epoch: bool = True) -> Dict[str, list]:
    """Density, live FLOPs and a validation metric against the training iteration.

    Args:
        path (str): A work dir (its newest training run is read, see
            :func:`find_scalars`) or a ``scalars.json``.
        metric (str, optional): Validation metric to return; default
            ``accuracy/top1`` or ``coco/bbox_mAP``, whichever was logged, else the
            first metric of the first validation record.
        log_metric_by_epoch (bool): As the run's ``LoggerHook`` was set (mmengine's
            default True): in epoch-based runs the validation records are then
            stamped with the epoch, and are placed at the epoch's last iteration.

    Returns:
        dict: ``iter`` (training iterations logged) with ``density_lgc``,
        ``density_sfr`` and ``live_mflops`` at those iterations (None where not
        logged), ``val_iter`` and ``val`` (the metric at the end of each validation),
        ``metric`` (its name or None) and ``file``.

    Raises:
        ValueError: if the file has no density record (the run had no
            ``SparsifyHook``), or ``metric`` was not logged.
    """
    file = find_scalars(path)
    train, val = _read_records(file)
    if not train:
        raise ValueError(f'{file} has no {"/".join(SPARSITY_KEYS)} record: was the run trained '
                         'with SparsifyHook?')
    available = list(dict.fromkeys(k for r in val for k in r if k not in _NOT_METRICS))
    if metric is None:
        metric = next((k for k in _PREFERRED_METRICS if k in available),
                      available[0] if available else None)
    elif metric not in available:
        raise ValueError(f'metric {metric!r} is not in the validation records of {file}; '
                         f'logged: {available}')
    val = [r for r in val if metric in r] if metric else []
    if val and log_metric_by_epoch and 'epoch' in train[0]:
        per_epoch = _iters_per_epoch(train)
        val_iter = [r['step'] * per_epoch for r in val]
    else:
        val_iter = [r['step'] for r in val]
    curves = {'iter': [r['iter'] for r in train]}
    for key in SPARSITY_KEYS:
        curves[key] = [r.get(key) for r in train]
    curves.update(val_iter=val_iter, val=[r[metric] for r in val], metric=metric, file=file)
    return curves


def plot_sparsification_curves(path: str, out: str, metric: Optional[str] = None,
                               log_metric_by_epoch: bool = True) -> Dict[str, list]:
    """Draw density, live FLOPs and the validation metric against iteration, as a PNG.

    The upper panel shows the density (live / total connections) of the LGC and SFR
    layers and, on the right axis, the model's FLOPs at that density (the paper's
    count); the lower panel the validation metric at the end of each validation.

    Args:
        path (str): A work dir (its newest training run) or a ``scalars.json``.
        out (str): PNG to write (folders are created).
        metric, log_metric_by_epoch: See :func:`load_sparsification_curves`.

    Returns:
        dict: The curves drawn, as :func:`load_sparsification_curves` returns them.

    Example:
        >>> plot_sparsification_curves('work_dirs/demo_cls',
        ...                            'work_dirs/demo_cls/curves.png')  # doctest: +SKIP
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    curves = load_sparsification_curves(path, metric, log_metric_by_epoch)
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(7, 5.5),
                                      gridspec_kw=dict(height_ratios=(3, 2)))
    # a logged value holds until the next record (pruning happens in steps)
    for key, label, style in (('density_lgc', 'LGC density', dict(color='tab:blue', lw=3)),
                              ('density_sfr', 'SFR density', dict(color='tab:orange', lw=1.5))):
        points = [(i, v) for i, v in zip(curves['iter'], curves[key]) if v is not None]
        if points:
            top.plot(*zip(*points), label=label, drawstyle='steps-post', **style)
    top.set_ylim(0, 1.05)
    top.set_ylabel('density (live / all connections)')
    handles, labels = top.get_legend_handles_labels()
    flops = [(i, v) for i, v in zip(curves['iter'], curves['live_mflops']) if v is not None]
    if flops:
        right = top.twinx()
        right.plot(*zip(*flops), label='live MFLOPs', color='tab:green', linestyle='--',
                   drawstyle='steps-post')
        right.set_ylabel('FLOPs at current density (M)')
        right.set_ylim(bottom=0)
        more = right.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    top.legend(handles, labels, loc='upper right', fontsize=8)
    top.set_title('Learned sparsification')
    if curves['val']:
        bottom.plot(curves['val_iter'], curves['val'], marker='o', color='tab:red')
        bottom.set_ylabel(f"validation {curves['metric']}")
    else:
        bottom.text(0.5, 0.5, 'no validation logged', ha='center', va='center',
                    transform=bottom.transAxes)
    bottom.set_xlabel('iteration')
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return curves
