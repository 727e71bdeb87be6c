"""Evaluate a checkpoint of an mmcnv2 (mmpretrain or mmdet) config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options key=value ...]

The model is built in the form CHECKPOINT holds (training or deploy: no
model.backbone.deploy option is needed), and CHECKPOINT must fit it exactly: another
model's checkpoint is an error that names the keys, never an evaluation of random weights.
"""
import argparse

from mmcnv2.apis import test
from mmcnv2_tools.cli import add_cfg_options, add_launcher, exit_on


def parse_args():
    parser = argparse.ArgumentParser(description='Test a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs')
    add_cfg_options(parser)
    add_launcher(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    with exit_on():
        test(args.config, args.checkpoint, args.work_dir, args.cfg_options, args.launcher)


if __name__ == '__main__':
    main()
