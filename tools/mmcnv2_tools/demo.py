"""The two demos behind ``make demo`` (detection) and ``make demo-cls`` (classification).

Each trains from scratch on real data that ships with the project, with
``SparsifyHook`` pruning the LGC/SFR layers during training, then evaluates the
training form, converts it, evaluates the deploy form, and reports where
everything went and what to run next.
"""
import copy
import glob
import os
import os.path as osp
import shlex
import sys
import time
from typing import List, Optional, Union

from mmengine.config import Config

from mmcnv2.analysis.connections import plot_connections
from mmcnv2.analysis.curves import plot_sparsification_curves
from mmcnv2.apis.deploy import compare_forms
from mmcnv2.apis.inference import infer_images
from mmcnv2.apis.runner import train

DEMOS = {
    'det': dict(config='configs/demo/retinanet_cnv2_trees.py', work_dir='work_dirs/demo_det',
                metrics=('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75')),
    'cls': dict(config='configs/demo/cnv2_digits.py', work_dir='work_dirs/demo_cls',
                metrics=('accuracy/top1', )),
}


def _last_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def schedule_options(config: Union[str, Config], epochs: int) -> dict:
    """``cfg_options`` that train an epoch-based config for ``epochs`` epochs.

    The learning-rate schedule is stretched with it: every epoch-based
    parameter scheduler's ``begin``, ``end`` and ``T_max`` are scaled by
    ``epochs / max_epochs`` (iteration-based ones, e.g. a warm-up of a few
    iterations, are kept); so are the validation and checkpoint intervals,
    which stay at least 1 and at most ``epochs``. ``SparsifyHook`` follows the
    new length by itself (it works on the fraction of training done).

    Args:
        config (str | Config): An epoch-based config (``train_cfg.max_epochs``).
        epochs (int): The new number of epochs, >= 1.

    Returns:
        dict: Options for :func:`mmcnv2.apis.runner.train` (or ``--cfg-options``).

    Example:
        >>> opts = schedule_options('configs/demo/cnv2_digits.py', 24)
        >>> opts['train_cfg.max_epochs'], opts['train_cfg.val_interval']
        (24, 8)
        >>> [(s['begin'], s['end'], s['T_max']) for s in opts['param_scheduler']]
        [(0, 24, 24)]
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f'epochs must be an int >= 1, got {epochs!r}')
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    old = cfg.train_cfg.get('max_epochs')
    if old is None:
        raise ValueError('schedule_options needs an epoch-based config (train_cfg.max_epochs)')

    def scale(value):
        return max(0, min(epochs, round(value * epochs / old)))

    schedulers = copy.deepcopy(cfg.get('param_scheduler') or [])
    for s in ([schedulers] if isinstance(schedulers, dict) else schedulers):
        if s.get('by_epoch', True):
            for key in ('begin', 'end', 'T_max'):
                if key in s and s[key] <= old:
                    s[key] = scale(s[key])
    options = {'train_cfg.max_epochs': epochs, 'param_scheduler': schedulers}
    if 'val_interval' in cfg.train_cfg:
        options['train_cfg.val_interval'] = max(1, scale(cfg.train_cfg.val_interval))
    checkpoint = cfg.get('default_hooks', {}).get('checkpoint')
    if checkpoint and checkpoint.get('by_epoch', True) and 'interval' in checkpoint:
        options['default_hooks.checkpoint.interval'] = max(1, scale(checkpoint['interval']))
    return options


def run_demo(kind: str, work_dir: str = None, root: str = '.', cfg_options: dict = None,
             epochs: Optional[int] = None) -> dict:
    """Train, evaluate both forms and (detection) draw detections on a val tile.

    Args:
        kind (str): ``'det'`` or ``'cls'``.
        work_dir (str, optional): Output folder; defaults to ``work_dirs/demo_<kind>``.
        root (str): Repository root (configs and demo data are relative to it).
        cfg_options (dict, optional): Overrides for the demo config.
        epochs (int, optional): Train this many epochs, with the schedule
            stretched to match (:func:`schedule_options`).

    Returns:
        dict: ``checkpoint``, ``deploy_checkpoint``, ``forms`` (metrics, FLOPs and
        params of both forms), ``work_dir``, ``config``, ``root``, ``seconds`` (wall time
        of the whole demo) and, for detection, ``picture``; for
        classification, ``connections`` (the paper's Figures 6/7) and ``curves``
        (the sparsification curves, :func:`mmcnv2.analysis.plot_sparsification_curves`).
    """
    if kind not in DEMOS:
        raise ValueError(f"kind must be one of {sorted(DEMOS)}, got {kind!r}")
    start = time.perf_counter()
    spec = DEMOS[kind]
    config = osp.join(root, spec['config'])
    work_dir = work_dir or osp.join(root, spec['work_dir'])
    options = schedule_options(config, epochs) if epochs is not None else {}
    options.update(cfg_options or {})
    options = options or None
    train(config, work_dir=work_dir, cfg_options=options)
    ckpt = _last_checkpoint(work_dir)
    deploy_ckpt = osp.splitext(ckpt)[0] + '_deploy.pth'
    forms = compare_forms(config, ckpt, out=None if osp.exists(deploy_ckpt) else deploy_ckpt,
                          cfg_options=options)
    # the model changes the demo trained with: the next commands build the same model
    model_options = {k: v for k, v in (cfg_options or {}).items() if k.startswith('model.')}
    result = dict(checkpoint=ckpt, deploy_checkpoint=deploy_ckpt, forms=forms, work_dir=work_dir,
                  config=config, root=root, model_options=model_options)
    if kind == 'cls':  # the paper's Figures 6/7 from the trained (training-form) checkpoint
        result['connections'] = osp.join(work_dir, 'connections.png')
        plot_connections(ckpt, result['connections'])
        # density and live FLOPs against iteration, with the validation accuracy
        result['curves'] = osp.join(work_dir, 'curves.png')
        plot_sparsification_curves(work_dir, result['curves'])
    if kind == 'det':
        tile = sorted(glob.glob(osp.join(root, 'demo_data/neon_trees/val/*.jpg')))[0]
        cfg = Config.fromfile(config)
        if options:
            cfg.merge_from_dict(options)
        cfg.model.backbone.deploy = True
        infer_images(cfg, deploy_ckpt, [tile], osp.join(work_dir, 'vis'), score_thr=0.3)
        result['picture'] = osp.join(work_dir, 'vis', 'vis', osp.basename(tile))
    result['seconds'] = time.perf_counter() - start
    print_summary(kind, result)
    return result


def _shell_path(path: str) -> str:
    """``path`` relative to the current directory when it lies below it, else absolute."""
    path = osp.abspath(path)
    rel = osp.relpath(path)
    return shlex.quote(path if rel.startswith('..') else rel)


def _option_text(value) -> str:
    """``value`` as mmengine's ``DictAction`` reads it back from the command line.

    Example:
        >>> _option_text([8, 16]), _option_text((0.5, 'a')), _option_text(True)
        ('[8,16]', '(0.5,a)', 'True')
    """
    if isinstance(value, (list, tuple)):
        inner = ','.join(_option_text(v) for v in value)
        return f'[{inner}]' if isinstance(value, list) else f'({inner})'
    if isinstance(value, (bool, int, float, str)) or value is None:
        return str(value)
    raise ValueError(f'cannot write the option value {value!r} on a command line')


def _cfg_options_arg(options: dict) -> str:
    """`` --cfg-options k=v ...`` for ``options`` (shell-quoted), or '' when empty."""
    if not options:
        return ''
    return ' --cfg-options ' + ' '.join(shlex.quote(f'{k}={_option_text(v)}')
                                        for k, v in options.items())


def next_commands(kind: str, result: dict) -> List[str]:
    """Commands to try on the demo's outputs, runnable as printed from the current directory.

    Args:
        kind (str): ``'det'`` or ``'cls'``.
        result (dict): :func:`run_demo`'s result (``root``, ``config``, ``work_dir``,
            ``deploy_checkpoint`` and ``model_options``, the ``model.*`` options the
            demo trained with, which the commands that build the model repeat).

    Returns:
        list[str]: One ``# what it does`` line and the command, per command.
    """
    python = _shell_path(sys.executable)
    root = result['root']
    tool = lambda name: f'{python} {_shell_path(osp.join(root, "tools", name))}'  # noqa: E731
    config, deploy = _shell_path(result['config']), _shell_path(result['deploy_checkpoint'])
    out = lambda name: _shell_path(osp.join(result['work_dir'], name))  # noqa: E731
    model_options = dict(result.get('model_options') or {})
    as_deploy = _cfg_options_arg({**model_options, 'model.backbone.deploy': True})
    export = lambda name, side: (  # noqa: E731
        f'{tool("export_onnx.py")} {config} {deploy} {out(name)} --shape {side} {side}'
        + _cfg_options_arg(model_options))
    if kind == 'det':
        val = _shell_path(osp.join(root, 'demo_data', 'neon_trees', 'val'))
        return [
            '# detect trees in your own images (files or folders; here the val tiles)\n'
            f'{tool("infer.py")} {config} {deploy} {val} --out-dir {out("infer")}{as_deploy}',
            '# COCO metrics of the deploy checkpoint\n'
            f'{tool("test.py")} {config} {deploy} --work-dir {out("test")}{as_deploy}',
            '# export the backbone to ONNX (checked against PyTorch in onnxruntime)\n'
            + export('trees.onnx', 400),
            '# accuracy per FLOP against ShuffleNetV2 / MobileNetV2 on these trees '
            '(4 trainings as long as this one)\n'
            f'{tool("compare.py")} --tasks det --seeds 0 --out-dir {out("compare")}',
            '# CPU latency of the fused ImageNet CondenseNetV2-A against its same-FLOPs peer\n'
            f'{tool("benchmark.py")} --models CondenseNetV2-A --batches 1 --no-detectors '
            '--no-onnx',
        ]
    return [
        '# export the classifier to ONNX (checked against PyTorch in onnxruntime)\n'
        + export('digits.onnx', 32),
        '# accuracy of the deploy checkpoint\n'
        f'{tool("test.py")} {config} {deploy} --work-dir {out("test")}{as_deploy}',
        '# accuracy per FLOP against ShuffleNetV2 / MobileNetV2 on these digits '
        '(4 trainings as long as this one)\n'
        f'{tool("compare.py")} --tasks cls --seeds 0 --out-dir {out("compare")}',
        '# CPU latency of the fused ImageNet CondenseNetV2-A against its same-FLOPs peer\n'
        f'{tool("benchmark.py")} --models CondenseNetV2-A --batches 1 --no-detectors --no-onnx',
    ]


def print_summary(kind: str, result: dict, file=None):
    """Print the demo's figures, where its outputs are and what to run next."""
    file = file or sys.stdout
    names = DEMOS[kind]['metrics']
    lines = ['', '=' * 78,
             f"{'form':<10}" + ''.join(f'{n.split("/")[-1]:>14}' for n in names)
             + f"{'FLOPs':>12}{'params':>11}"]
    for form in ('training', 'deploy'):
        r = result['forms'][form]
        lines.append(f'{form:<10}'
                     + ''.join(f"{r['metrics'].get(n, float('nan')):>14.4f}" for n in names)
                     + f"{r['paper_flops'] / 1e6:>11.1f}M{r['paper_params'] / 1e6:>10.4f}M")
    same = all(result['forms']['training']['metrics'][n] == result['forms']['deploy']['metrics'][n]
               for n in names)
    lines.append(f"identical after conversion: {'yes' if same else 'NO'}")
    if 'seconds' in result:
        lines.append(f"demo wall time: {result['seconds'] / 60:.1f} min")
    lines += ['', 'outputs',
              f"  training-form checkpoint : {result['checkpoint']}",
              f"  deploy-form checkpoint   : {result['deploy_checkpoint']} "
              '(load with model.backbone.deploy=True)']
    if 'picture' in result:
        lines.append(f"  detections on a val tile : {result['picture']}")
    if 'connections' in result:
        lines.append(f"  connections (Figs 6/7)   : {result['connections']}")
    if 'curves' in result:
        lines.append(f"  sparsification curves    : {result['curves']}")
    logs = sorted(glob.glob(osp.join(result['work_dir'], '*', '*.log')), key=os.path.getmtime)
    lines.append(f"  training log             : {logs[-1] if logs else result['work_dir']}")
    lines += ['', 'next', *('  ' + c.replace('\n', '\n  ') for c in next_commands(kind, result)),
              '=' * 78]
    print('\n'.join(lines), file=file)
