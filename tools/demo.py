"""Run a demo: ``python tools/demo.py det`` (default) or ``python tools/demo.py cls``.

det: RetinaNet + CondenseNetV2 trained from scratch on real NEON aerial tree-crown tiles,
     COCO bbox mAP of the training and deploy forms, detections drawn on a val tile.
cls: CondenseNetV2 on scikit-learn's real handwritten digits, accuracy of both forms.

    python tools/demo.py det [--work-dir DIR] [--epochs N] [--seed S] [--cfg-options ...]

``--epochs`` trains longer (or shorter) with the learning-rate schedule stretched to match;
``--seed`` sets ``randomness.seed``.
"""
import argparse
import os.path as osp

from mmengine.config import DictAction

from mmcnv2_tools.demo import run_demo


def main():
    parser = argparse.ArgumentParser(description='Run an mmcnv2 demo')
    parser.add_argument('kind', nargs='?', default='det', choices=['det', 'cls'])
    parser.add_argument('--work-dir', help='output folder (default: work_dirs/demo_<kind>)')
    parser.add_argument('--epochs', type=int, help="train this many epochs (default: the config's)")
    parser.add_argument('--seed', type=int, help="random seed (default: the config's)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the demo config')
    args = parser.parse_args()
    options = dict(args.cfg_options or {})
    if args.seed is not None:
        options['randomness.seed'] = args.seed
    run_demo(args.kind, args.work_dir, root=osp.dirname(osp.dirname(osp.abspath(__file__))),
             cfg_options=options or None, epochs=args.epochs)


if __name__ == '__main__':
    main()
