"""Costs, summary table and figure of the accuracy-per-FLOP comparison (``tools/compare.py``).

A comparison is a list of *runs* (one trained model: ``task``, ``backbone``,
``seed``, its metrics) and, per ``(task, backbone)``, its *costs*: the whole
model's FLOPs and parameters counted the paper's way in deploy form
(:func:`~mmcnv2.analysis.complexity.paper_complexity`), the backbone's
FLOPs, and the latency of one forward pass at batch 1 on this CPU: ours
fused (:func:`mmcnv2.models.fuse_for_inference`), the peers as built, in eval
mode; detectors without their post-processing (``mode='tensor'``).
"""
import json
import os
import os.path as osp
import statistics
from typing import Dict, List, Optional, Sequence

import torch

from mmcnv2.analysis.complexity import paper_complexity
from mmcnv2.analysis.timing import machine_info, time_forward
from mmcnv2.models.build import build_model
from mmcnv2.models.deploy import fuse_for_inference, sparse_layers, switch_model_to_deploy


def build_condensed_model(model_cfg: dict, scope: str) -> torch.nn.Module:
    """Build ``model_cfg`` with random weights, in its fastest inference form.

    A model with LGC/SFR layers is pruned to its final density
    (``sparsify(1.0)``, as after training), condensed and fused; any other
    model is returned as built, in eval mode.
    """
    model = build_model(model_cfg, scope)
    model.eval()  # some backbones' train() returns None: no chaining
    layers = sparse_layers(model)
    if layers:
        for _, layer in layers:
            layer.sparsify(1.0)
        switch_model_to_deploy(model)
    return model


def model_costs(model_cfg: dict, scope: str, input_shape: Sequence[int],
                latency_budget_s: float = 2.0) -> dict:
    """FLOPs, parameters and batch-1 latency of a model config.

    Args:
        model_cfg (dict): An mmdet or mmpretrain model config.
        scope (str): ``'mmdet'`` or ``'mmpretrain'``.
        input_shape (Sequence[int]): ``(C, H, W)``.
        latency_budget_s (float): Seconds spent timing (at least 7 passes);
            0 skips the latency.

    Returns:
        dict: ``flops`` and ``params`` (the whole model, deploy form),
        ``backbone_flops``, ``latency_ms`` (median; None when skipped) and
        ``latency_form`` (``'fused'`` or ``'eval'``).

    Example:
        >>> cfg = dict(type='ImageClassifier', backbone=dict(type='CondenseNetV2', arch='cifar110'),
        ...            neck=dict(type='GlobalAveragePooling'),
        ...            head=dict(type='LinearClsHead', num_classes=10, in_channels=688))
        >>> costs = model_costs(cfg, 'mmpretrain', (3, 32, 32), latency_budget_s=0)
        >>> round(costs['flops'] / 1e6, 1), costs['latency_form']
        (59.0, 'fused')
    """
    model = build_condensed_model(model_cfg, scope)
    ours = bool(sparse_layers(model))
    forward = lambda m, x: m(x, mode='tensor')  # noqa: E731
    flops, params = paper_complexity(model, tuple(input_shape), forward=forward)
    backbone_flops, _ = paper_complexity(model.backbone, tuple(input_shape),
                                         uncounted=getattr(model.backbone, 'paper_uncounted', ()))
    costs = dict(flops=flops, params=params, backbone_flops=backbone_flops, latency_ms=None,
                 latency_form='fused' if ours else 'eval')
    if latency_budget_s:
        if ours:
            fuse_for_inference(model)
        x = torch.randn(1, *input_shape)
        with torch.inference_mode():
            costs['latency_ms'] = time_forward(lambda: model(x, mode='tensor'),
                                               budget_s=latency_budget_s).median
    return costs


def _spread(values: List[float]) -> dict:
    return dict(mean=statistics.fmean(values),
                std=statistics.stdev(values) if len(values) > 1 else 0.0,
                min=min(values), max=max(values), values=list(values))


def summarize(runs: List[dict], costs: Dict[str, dict],
              metrics: Dict[str, Sequence[str]]) -> List[dict]:
    """One row per ``(task, backbone)``: the metrics over seeds and the costs.

    Args:
        runs (list[dict]): Each with ``task``, ``backbone``, ``seed``,
            ``ours``, ``train_s`` and the task's metrics.
        costs (dict): ``'task/backbone'`` -> :func:`model_costs` result.
        metrics (dict): task -> metric names (the first is the headline one).

    Returns:
        list[dict]: Rows in the order the backbones first appear in ``runs``,
        each with ``task``, ``backbone``, ``ours``, ``seeds``, per metric a
        ``{mean, std, min, max, values}`` dict, ``train_s`` (mean) and the
        costs.

    Example:
        >>> runs = [dict(task='cls', backbone='A', ours=True, seed=s, train_s=10.0,
        ...              **{'accuracy/top1': acc}) for s, acc in ((0, 97.0), (1, 99.0))]
        >>> row, = summarize(runs, {'cls/A': dict(flops=1e6)}, {'cls': ['accuracy/top1']})
        >>> row['seeds'], row['accuracy/top1']['mean'], round(row['accuracy/top1']['std'], 3)
        ([0, 1], 98.0, 1.414)
    """
    order, groups = [], {}
    for run in runs:
        key = f"{run['task']}/{run['backbone']}"
        if key not in groups:
            order.append(key)
            groups[key] = []
        groups[key].append(run)
    rows = []
    for key in order:
        group = groups[key]
        task, backbone = key.split('/', 1)
        row = dict(task=task, backbone=backbone, ours=group[0]['ours'],
                   seeds=[r['seed'] for r in group],
                   train_s=statistics.fmean(r['train_s'] for r in group))
        for name in metrics[task]:
            row[name] = _spread([r[name] for r in group])
        row.update(costs.get(key, {}))
        rows.append(row)
    return rows


def _metric_label(name: str) -> str:
    return {'coco/bbox_mAP_50': 'AP50', 'coco/bbox_mAP': 'mAP',
            'accuracy/top1': 'top-1 (%)'}.get(name, name)


def format_markdown(rows: List[dict], metrics: Dict[str, Sequence[str]]) -> str:
    """A markdown table per task: metrics (mean ± std over seeds, [min-max]) and costs."""
    out = []
    for task in dict.fromkeys(r['task'] for r in rows):
        names = metrics[task]
        head = (['backbone'] + [_metric_label(n) for n in names]
                + ['seeds', 'FLOPs', 'backbone FLOPs', 'params', 'latency (ms)', 'train (min)'])
        lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
        for r in (r for r in rows if r['task'] == task):
            cells = [r['backbone'] + (' (ours)' if r['ours'] else '')]
            digits = 2 if task == 'cls' else 3
            for n in names:
                m = r[n]
                cells.append(f"{m['mean']:.{digits}f} ± {m['std']:.{digits}f} "
                             f"[{m['min']:.{digits}f}-{m['max']:.{digits}f}]")
            latency = r.get('latency_ms')
            cells += [str(len(r['seeds'])),
                      f"{r['flops'] / 1e6:.1f}M" if 'flops' in r else '',
                      f"{r['backbone_flops'] / 1e6:.1f}M" if 'backbone_flops' in r else '',
                      f"{r['params'] / 1e6:.3f}M" if 'params' in r else '',
                      f"{latency:.1f} ({r['latency_form']})" if latency is not None else '',
                      f"{r['train_s'] / 60:.1f}"]
            lines.append('| ' + ' | '.join(cells) + ' |')
        out.append(f'**{task}**\n\n' + '\n'.join(lines))
    return '\n\n'.join(out) + '\n'


def plot(rows: List[dict], metrics: Dict[str, Sequence[str]], out: str, title: str = ''):
    """The paper's Figure 9 for these runs: the headline metric of each task against
    FLOPs (left) and latency (right), mean and spread (min-max) over seeds."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r['task'] for r in rows))
    fig, axes = plt.subplots(len(tasks), 2, figsize=(10, 4 * len(tasks)), squeeze=False)
    for i, task in enumerate(tasks):
        name = metrics[task][0]
        for r in (r for r in rows if r['task'] == task):
            m = r[name]
            yerr = [[m['mean'] - m['min']], [m['max'] - m['mean']]]
            style = dict(marker='*' if r['ours'] else 'o', markersize=12 if r['ours'] else 8,
                         capsize=4, linestyle='none', label=r['backbone'])
            for j, (key, scale) in enumerate((('flops', 1e6), ('latency_ms', 1))):
                if r.get(key) is not None:
                    axes[i][j].errorbar([r[key] / scale], [m['mean']], yerr=yerr, **style)
        for j, xlabel in enumerate(('FLOPs (M, paper count)', 'latency (ms, batch 1, CPU)')):
            ax = axes[i][j]
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f'{task}: {_metric_label(name)}')
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def write_report(rows: List[dict], runs: List[dict], metrics: Dict[str, Sequence[str]],
                 out_dir: str, settings: Optional[dict] = None) -> dict:
    """Write ``compare.md``, ``compare.json`` and ``compare.png`` to ``out_dir``.

    Returns:
        dict: Paths of the three files.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {k: osp.join(out_dir, f'compare.{k}') for k in ('md', 'json', 'png')}
    with open(paths['md'], 'w') as f:
        f.write(format_markdown(rows, metrics))
    with open(paths['json'], 'w') as f:
        json.dump(dict(settings=settings or {}, machine=machine_info(), rows=rows, runs=runs), f,
                  indent=1)
    plot(rows, metrics, paths['png'])
    return paths
