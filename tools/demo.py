"""Run a demo: ``python tools/demo.py det`` (default) or ``python tools/demo.py cls``.

det: RetinaNet + CondenseNetV2 trained from scratch on real NEON aerial tree-crown tiles,
     COCO bbox mAP of the training and deploy forms, detections drawn on a val tile.
cls: CondenseNetV2 on scikit-learn's real handwritten digits, accuracy of both forms.
"""
import argparse
import os.path as osp

from mmcnv2.apis.demo import run_demo


def main():
    parser = argparse.ArgumentParser(description='Run an mmcnv2 demo')
    parser.add_argument('kind', nargs='?', default='det', choices=['det', 'cls'])
    parser.add_argument('--work-dir', help='output folder (default: work_dirs/demo_<kind>)')
    args = parser.parse_args()
    run_demo(args.kind, args.work_dir, root=osp.dirname(osp.dirname(osp.abspath(__file__))))


if __name__ == '__main__':
    main()
