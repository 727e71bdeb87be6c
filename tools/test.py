"""Evaluate a checkpoint of an mmcnv2 (mmpretrain or mmdet) config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options key=value ...]

The model is built in the form CHECKPOINT holds (training or deploy: no
model.backbone.deploy option is needed), and CHECKPOINT must fit it exactly: another
model's checkpoint is an error that names the keys, never an evaluation of random weights.
"""
import argparse
import sys

from mmengine.config import DictAction

from mmcnv2.apis import INPUT_ERRORS, test


def parse_args():
    parser = argparse.ArgumentParser(description='Test a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser.parse_args()


def main():
    args = parse_args()
    try:
        test(args.config, args.checkpoint, args.work_dir, args.cfg_options, args.launcher)
    except INPUT_ERRORS as e:
        sys.exit(f'error: {e}')


if __name__ == '__main__':
    main()
