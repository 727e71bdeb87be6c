"""tools/compare.py: matched FLOPs, and the whole tool on a tiny schedule (the real code path)."""
import json
import os
import os.path as osp
import subprocess
import sys

import matplotlib.image as mpimg
import pytest
from mmengine.config import Config

from mmcnv2_tools.compare import BACKBONES, TASKS, task_config, variant_options
from mmcnv2_tools.compare_report import model_costs, summarize

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _variant_cfg(task, backbone):
    cfg = Config.fromfile(task_config(task, ROOT))
    cfg.merge_from_dict(variant_options(task, backbone, root=ROOT))
    return cfg


def _crowns():
    """Every tree-crown box of the NEON tiles (train and val), as x1 y1 x2 y2."""
    import torch
    boxes = []
    for split in ('train', 'val'):
        with open(osp.join(ROOT, f'demo_data/neon_trees/annotations/{split}.json')) as f:
            boxes += [a['bbox'] for a in json.load(f)['annotations']]
    b = torch.tensor(boxes)
    return torch.cat([b[:, :2], b[:, :2] + b[:, 2:]], dim=1)


def test_detector_pyramid_fits_the_crowns_for_every_backbone():
    """Each backbone feeds the FPN at strides 8, 16, 32 with the channels it expects, the FPN's
    three levels are where the anchors are, and the anchors fit the crowns: RetinaNet's assigner
    makes an anchor positive at IoU >= 0.5, and 98% of the 1178 crowns (9-108 px) have one, none
    below IoU 0.3 (mmdet's default anchors, 32-813 px, leave 11.5% without one)."""
    import torch
    from mmdet.models.task_modules.prior_generators import AnchorGenerator
    from mmdet.structures.bbox import bbox_overlaps
    from mmengine.registry import DefaultScope, MODELS

    x = torch.zeros(1, 3, 416, 416)  # a 400x400 tile padded to 416 (size_divisor 32)
    for name in BACKBONES['det']:
        cfg = _variant_cfg('det', name)
        with DefaultScope.overwrite_default_scope('mmdet'):
            model = MODELS.build(cfg.model)
        model.eval()
        with torch.no_grad():
            feats = model.backbone(x)
            levels = model.neck(feats)
        assert [f.shape[1] for f in feats] == list(cfg.model.neck.in_channels), name
        assert [lvl.shape[-1] for lvl in levels] == [52, 26, 13], name
        # ours are pruned while they train; the peers have nothing to prune
        hooks = [h['type'] for h in cfg.get('custom_hooks', [])]
        assert ('SparsifyHook' in hooks) == BACKBONES['det'][name][1], name
    gen_cfg = dict(cfg.model.bbox_head.anchor_generator)
    assert gen_cfg.pop('type') == 'AnchorGenerator' and gen_cfg['strides'] == [8, 16, 32]
    assert cfg.model.train_cfg.assigner.pos_iou_thr == 0.5
    gen = AnchorGenerator(**gen_cfg)
    anchors = torch.cat(gen.grid_priors([(52, 52), (26, 26), (13, 13)], device='cpu'))
    best = bbox_overlaps(_crowns(), anchors).max(dim=1).values
    assert len(best) == 1178
    assert (best >= 0.5).float().mean() >= 0.98
    assert best.min() >= 0.3


def test_detector_costs_are_matched():
    """The whole detectors and their backbones within 7% of the FLOPs of the one with
    mmpretrain's ShuffleNetV2, in the form the tool counts them (built, not trained)."""
    costs = {}
    for name in BACKBONES['det']:
        cfg = _variant_cfg('det', name)
        costs[name] = model_costs(cfg.model, cfg.default_scope, TASKS['det']['input_shape'],
                                  latency_budget_s=0)
    budget = costs['ShuffleNetV2-0.5x']
    for name, cost in costs.items():
        assert abs(cost['backbone_flops'] / budget['backbone_flops'] - 1) < 0.07, name
        assert abs(cost['flops'] / budget['flops'] - 1) < 0.07, name
        assert cost['latency_ms'] is None
        assert cost['latency_form'] == ('fused' if BACKBONES['det'][name][1] else 'eval')


def test_bad_task_or_backbone():
    with pytest.raises(ValueError, match="task must be one of \\['cls', 'det'\\]"):
        variant_options('seg', 'CondenseNetV2')
    with pytest.raises(ValueError, match="backbone of task 'det' must be one of"):
        variant_options('det', 'ResNet-50')


def test_summary_spreads_over_seeds_and_keeps_costs():
    runs = [dict(task='det', backbone='X', ours=False, seed=s, train_s=60.0,
                 **{'coco/bbox_mAP_50': v, 'coco/bbox_mAP': v / 3}) for s, v in
            ((0, 0.30), (1, 0.36), (2, 0.33))]
    row, = summarize(runs, {'det/X': dict(flops=5e8, latency_ms=12.0)},
                     {'det': ['coco/bbox_mAP_50', 'coco/bbox_mAP']})
    ap50 = row['coco/bbox_mAP_50']
    assert (ap50['min'], ap50['max'], row['seeds']) == (0.30, 0.36, [0, 1, 2])
    assert ap50['mean'] == pytest.approx(0.33) and ap50['std'] == pytest.approx(0.03)
    assert row['flops'] == 5e8 and row['latency_ms'] == 12.0


def _compare(out_dir, *args, options=(), check=True):
    cmd = [sys.executable, 'tools/compare.py', '--epochs-scale', '0.001', '--latency-budget',
           '0.05', '--out-dir', str(out_dir), *args, '--cfg-options',
           'train_dataloader.dataset.indices=8', 'val_dataloader.dataset.indices=40',
           'log_level=WARNING', *options]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _table_rows(markdown, task):
    """The cells of the markdown table of ``task``, by backbone."""
    section = markdown.split(f'**{task}**')[1].split('**')[0]
    lines = [ln for ln in section.splitlines() if ln.startswith('| ')]
    head = [c.strip() for c in lines[0].strip('|').split('|')]
    return {cells[0]: dict(zip(head, cells)) for cells in
            ([c.strip() for c in ln.strip('|').split('|')] for ln in lines[1:])}


def _check_costs(rows, task, backbones=None):
    """Every backbone within 7% of the FLOPs of mmpretrain's ShuffleNetV2, which sets the
    budget, the whole models too; ours timed fused, the peers as built."""
    rows = {r['backbone']: r for r in rows if r['task'] == task}
    assert sorted(rows) == sorted(backbones or BACKBONES[task])
    budget = next(r for name, r in rows.items() if name.startswith('ShuffleNetV2'))
    for name, row in rows.items():
        assert abs(row['backbone_flops'] / budget['backbone_flops'] - 1) < 0.07, name
        assert abs(row['flops'] / budget['flops'] - 1) < 0.07, name
        assert row['latency_ms'] > 0 and row['latency_form'] == (
            'fused' if BACKBONES[task][name][1] else 'eval'), name
        assert row['ours'] == BACKBONES[task][name][1], name


def test_tool_on_a_tiny_schedule(tmp_path):
    """The whole tool, one epoch on 8 images per run: the digits with every backbone and two
    seeds (then the same command again, which trains nothing), the trees with two."""
    import numpy as np

    cls_dir, det_dir = tmp_path / 'cls', tmp_path / 'det'
    out = _compare(cls_dir, '--tasks', 'cls', '--seeds', '0', '1').stdout
    table = (cls_dir / 'compare.md').read_text()
    assert table in out  # printed too
    assert mpimg.imread(str(cls_dir / 'compare.png')).shape[0] > 300
    cells = _table_rows(table, 'cls')
    assert sorted(cells) == sorted(n + (' (ours)' if o else '')
                                   for n, (_, o) in BACKBONES['cls'].items())
    # the spread over seeds, from the per-run records, computed independently of the tool
    for name in BACKBONES['cls']:
        top1 = []
        for seed in (0, 1):
            with open(cls_dir / 'runs' / f'cls_{name}_seed{seed}.json') as f:
                run = json.load(f)
            assert (run['seed'], run['epochs']) == (seed, 1)
            top1.append(run['accuracy/top1'])
        assert 0 <= min(top1) and max(top1) <= 100
        mean, std = np.mean(top1), np.std(top1, ddof=1)
        cell = next(c for b, c in cells.items() if b.split(' ')[0] == name)
        assert cell['top-1 (%)'] == f'{mean:.2f} ± {std:.2f} [{min(top1):.2f}-{max(top1):.2f}]'
        assert cell['seeds'] == '2'
    with open(cls_dir / 'compare.json') as f:
        report = json.load(f)
    _check_costs(report['rows'], 'cls')

    # the same command again: every run read back, none trained, the same runs reported
    stamps = {r: os.path.getmtime(cls_dir / 'runs' / r) for r in os.listdir(cls_dir / 'runs')}
    assert len(stamps) == 8
    _compare(cls_dir, '--tasks', 'cls', '--seeds', '0', '1')
    assert {r: os.path.getmtime(cls_dir / 'runs' / r) for r in stamps} == stamps
    with open(cls_dir / 'compare.json') as f:
        assert json.load(f)['runs'] == report['runs']
    # ... but not with other training options
    proc = _compare(cls_dir, '--tasks', 'cls', '--seeds', '0',
                    options=['optim_wrapper.optimizer.lr=0.01'], check=False)
    assert proc.returncode != 0 and 'use another --out-dir' in proc.stderr

    # the trees with two of the backbones (--backbones), ours and the one that sets the budget
    # (the FLOPs of all four: test_detector_costs_are_matched); two iterations leave every
    # detection score below the config's threshold: keep them all
    det_backbones = ['CondenseNetV2', 'ShuffleNetV2-0.5x']
    _compare(det_dir, '--tasks', 'det', '--seeds', '0', '--backbones', *det_backbones,
             options=['model.test_cfg.score_thr=0'])
    with open(det_dir / 'compare.json') as f:
        report = json.load(f)
    assert report['settings']['epochs'] == {'det': 1}
    _check_costs(report['rows'], 'det', det_backbones)
    for row in report['rows']:
        for metric in TASKS['det']['metrics']:
            assert len(row[metric]['values']) == 1 and 0 <= row[metric]['mean'] <= 1
    assert (det_dir / 'compare.png').exists()
