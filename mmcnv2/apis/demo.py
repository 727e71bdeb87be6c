"""The two demos behind ``make demo`` (detection) and ``make demo-cls`` (classification).

Each trains from scratch on real data that ships with the project, with
``SparsifyHook`` pruning the LGC/SFR layers during training, then evaluates the
training form, converts it, evaluates the deploy form, and reports where
everything went.
"""
import glob
import os.path as osp

from .deploy import compare_forms
from .runner import train

DEMOS = {
    'det': dict(config='configs/demo/retinanet_cnv2_trees.py', work_dir='work_dirs/demo_det',
                metrics=('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75')),
    'cls': dict(config='configs/demo/cnv2_digits.py', work_dir='work_dirs/demo_cls',
                metrics=('accuracy/top1', )),
}


def _last_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def run_demo(kind: str, work_dir: str = None, root: str = '.', cfg_options: dict = None) -> dict:
    """Train, evaluate both forms and (detection) draw detections on a val tile.

    Args:
        kind (str): ``'det'`` or ``'cls'``.
        work_dir (str, optional): Output folder; defaults to ``work_dirs/demo_<kind>``.
        root (str): Repository root (configs and demo data are relative to it).
        cfg_options (dict, optional): Overrides for the demo config (e.g. a
            shorter schedule).

    Returns:
        dict: ``checkpoint``, ``deploy_checkpoint``, ``forms`` (metrics, FLOPs and
        params of both forms) and, for detection, ``picture``; for
        classification, ``connections`` (the paper's Figures 6/7).
    """
    if kind not in DEMOS:
        raise ValueError(f"kind must be one of {sorted(DEMOS)}, got {kind!r}")
    spec = DEMOS[kind]
    config = osp.join(root, spec['config'])
    work_dir = work_dir or osp.join(root, spec['work_dir'])
    train(config, work_dir=work_dir, cfg_options=cfg_options)
    ckpt = _last_checkpoint(work_dir)
    deploy_ckpt = osp.splitext(ckpt)[0] + '_deploy.pth'
    forms = compare_forms(config, ckpt, out=None if osp.exists(deploy_ckpt) else deploy_ckpt,
                          cfg_options=cfg_options)
    result = dict(checkpoint=ckpt, deploy_checkpoint=deploy_ckpt, forms=forms, work_dir=work_dir)
    if kind == 'cls':  # the paper's Figures 6/7 from the trained (training-form) checkpoint
        from ..analysis.connections import plot_connections
        result['connections'] = osp.join(work_dir, 'connections.png')
        plot_connections(ckpt, result['connections'])
    if kind == 'det':
        from mmengine.config import Config

        from .inference import infer_images
        tile = sorted(glob.glob(osp.join(root, 'demo_data/neon_trees/val/*.jpg')))[0]
        cfg = Config.fromfile(config)
        cfg.model.backbone.deploy = True
        infer_images(cfg, deploy_ckpt, [tile], osp.join(work_dir, 'vis'), score_thr=0.3)
        result['picture'] = osp.join(work_dir, 'vis', 'vis', osp.basename(tile))
    print_summary(kind, result)
    return result


def print_summary(kind: str, result: dict):
    """Print the demo's figures and where its outputs are."""
    names = DEMOS[kind]['metrics']
    print('\n' + '=' * 78)
    print(f"{'form':<10}" + ''.join(f'{n.split("/")[-1]:>14}' for n in names)
          + f"{'FLOPs':>12}{'params':>11}")
    for form in ('training', 'deploy'):
        r = result['forms'][form]
        print(f'{form:<10}' + ''.join(f"{r['metrics'].get(n, float('nan')):>14.4f}" for n in names)
              + f"{r['paper_flops'] / 1e6:>11.1f}M{r['paper_params'] / 1e6:>10.4f}M")
    same = all(result['forms']['training']['metrics'][n] == result['forms']['deploy']['metrics'][n]
               for n in names)
    print(f"identical after conversion: {'yes' if same else 'NO'}")
    print(f"training-form checkpoint : {result['checkpoint']}")
    print(f"deploy-form checkpoint   : {result['deploy_checkpoint']} "
          '(load with model.backbone.deploy=True)')
    if 'picture' in result:
        print(f"detections on a val tile : {result['picture']}")
    if 'connections' in result:
        print(f"connections (Figs 6/7)   : {result['connections']}")
    print(f"logs                     : {result['work_dir']}")
    print('=' * 78)
