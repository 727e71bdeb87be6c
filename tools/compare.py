"""Accuracy per FLOP on the shipped data: our backbones against mmpretrain's at matched FLOPs.

    python tools/compare.py [--tasks det cls] [--seeds 0 1 2] [--epochs-scale 1.0]
                            [--backbones NAME ...] [--out-dir work_dirs/compare]
                            [--latency-budget 2.0] [--cfg-options KEY=VALUE ...]

For every task, backbone and seed, trains the task's recipe (det: the detection demo's
RetinaNet on the NEON tree tiles; cls: the classification demo on the digits) with that
backbone and reads the validation metrics after the last epoch; then counts each model's
FLOPs/params (paper count, deploy form) and times its batch-1 latency (ours fused, peers as
built). Writes OUT_DIR/compare.md (tables: mean ± std [min-max] over seeds), compare.json
(every run, the machine) and compare.png (metric against FLOPs and latency, like the paper's
Figure 9). Each finished run is kept in OUT_DIR/runs/*.json and not trained again when the
command is repeated (delete the file to redo it), so an interrupted comparison resumes; a
record trained with other epochs or --cfg-options is an error, not reused.
The backbones and why they match: mmcnv2_tools.compare (beside this script). ``--epochs-scale`` multiplies every
task's number of epochs (the schedule stretched to match); ``--cfg-options`` go to every run.
"""
import argparse
import json
import os
import os.path as osp
import time

from mmengine.config import Config, DictAction

from mmcnv2_tools.compare import (BACKBONES, TASKS, is_ours, task_config, train_variant,
                                  variant_options)
from mmcnv2_tools.compare_report import model_costs, summarize, write_report

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args():
    parser = argparse.ArgumentParser(description='Accuracy per FLOP against same-FLOPs peers')
    parser.add_argument('--tasks', nargs='+', default=list(TASKS), choices=list(TASKS))
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--backbones', nargs='+',
                        help='a subset of the backbones (default: all of each task): '
                        + '; '.join(f'{t}: {", ".join(b)}' for t, b in BACKBONES.items()))
    parser.add_argument('--epochs-scale', type=float, default=1.0,
                        help="multiply each task's epochs (default 1: the demo schedules)")
    parser.add_argument('--out-dir', default='work_dirs/compare')
    parser.add_argument('--latency-budget', type=float, default=2.0,
                        help='seconds of timing per model (0: no latency)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every run (e.g. a smaller dataset)')
    args = parser.parse_args()
    if args.epochs_scale <= 0:
        parser.error(f'--epochs-scale must be > 0, got {args.epochs_scale}')
    known = {b for t in args.tasks for b in BACKBONES[t]}
    unknown = sorted(set(args.backbones or ()) - known)
    if unknown:
        parser.error(f'unknown backbones {unknown} for tasks {args.tasks}; choose from '
                     f'{sorted(known)}')
    return args


def main():
    from tqdm import tqdm

    args = parse_args()
    plan = [(task, backbone, seed) for task in args.tasks for backbone in BACKBONES[task]
            if not args.backbones or backbone in args.backbones for seed in args.seeds]
    epochs = {}
    for task in args.tasks:
        max_epochs = Config.fromfile(task_config(task, ROOT)).train_cfg.max_epochs
        epochs[task] = max(1, round(max_epochs * args.epochs_scale))
    # as a run record stores them (JSON has lists, no tuples)
    cfg_options = json.loads(json.dumps(args.cfg_options))
    run_dir = osp.join(args.out_dir, 'runs')
    os.makedirs(run_dir, exist_ok=True)
    start = time.perf_counter()
    runs = []
    bar = tqdm(plan, desc='compare', unit='run', position=0, dynamic_ncols=True)
    for task, backbone, seed in bar:
        name = f'{task}_{backbone}_seed{seed}'
        bar.set_postfix_str(name)
        record = osp.join(run_dir, name + '.json')
        if osp.exists(record):
            with open(record) as f:
                run = json.load(f)
            asked = dict(epochs=epochs[task], cfg_options=cfg_options)
            done = {k: run.get(k) for k in asked}
            if done != asked:
                raise ValueError(f'{record} was trained with {done}, this command asks for '
                                 f'{asked}: use another --out-dir, or delete the file to '
                                 'train it again')
            runs.append(run)
            continue
        metrics = train_variant(task, backbone, seed, osp.join(args.out_dir, 'work_dirs', name),
                                epochs=epochs[task], root=ROOT, cfg_options=args.cfg_options)
        run = dict(task=task, backbone=backbone, seed=seed, ours=is_ours(task, backbone),
                   epochs=epochs[task], cfg_options=cfg_options, **metrics)
        with open(record, 'w') as f:
            json.dump(run, f, indent=1)
        runs.append(run)
        bar.write(f'{name}: ' + ', '.join(f'{k} {v:.4f}' for k, v in metrics.items()))
    bar.close()

    costs = {}
    for task, backbone in dict.fromkeys((t, b) for t, b, _ in plan):
        cfg = Config.fromfile(task_config(task, ROOT))
        cfg.merge_from_dict(variant_options(task, backbone, root=ROOT))
        costs[f'{task}/{backbone}'] = model_costs(cfg.model, cfg.default_scope,
                                                  TASKS[task]['input_shape'],
                                                  latency_budget_s=args.latency_budget)
    metrics = {t: TASKS[t]['metrics'] for t in args.tasks}
    rows = summarize(runs, costs, metrics)
    settings = dict(tasks=args.tasks, seeds=args.seeds, epochs=epochs,
                    cfg_options=args.cfg_options, wall_s=time.perf_counter() - start)
    paths = write_report(rows, runs, metrics, args.out_dir, settings)
    with open(paths['md']) as f:
        print('\n' + f.read())
    print(f"table: {paths['md']}\nruns and machine: {paths['json']}\nfigure: {paths['png']}")


if __name__ == '__main__':
    main()
