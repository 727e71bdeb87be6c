"""Train an mmcnv2 (mmpretrain or mmdet) config with mmengine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                                 [--cfg-options key=value ...] [--launcher pytorch]

Missing datasets or pretrained weights, and a checkpoint to resume from that is missing,
unreadable or another model's, are reported before anything is built.
"""
import argparse

from mmcnv2.apis import train
from mmcnv2_tools.cli import add_cfg_options, add_launcher, exit_on


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint in the work dir '
                        'if no path is given')
    parser.add_argument('--amp', action='store_true', help='enable automatic mixed precision')
    add_cfg_options(parser)
    add_launcher(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    with exit_on():
        train(args.config, args.work_dir, args.resume, args.amp, args.cfg_options, args.launcher)


if __name__ == '__main__':
    main()
