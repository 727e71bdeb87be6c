"""Convert a trained training-form checkpoint into the deploy (condensed) form.

    python tools/convert.py CONFIG CHECKPOINT OUT [--cfg-options key=value ...]

Works for any config whose model holds LGC/SFR layers (classifiers and detectors), with or
without EMA (mmengine's EMAHook stores the EMA weights in the checkpoint's state_dict).
Load the result with --cfg-options model.backbone.deploy=True.
"""
import argparse
import sys

from mmengine.config import DictAction

from mmcnv2.apis import convert_checkpoint


def parse_args():
    parser = argparse.ArgumentParser(description='Convert a checkpoint to deploy form')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('out')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def main():
    args = parse_args()
    try:
        convert_checkpoint(args.config, args.checkpoint, args.out, args.cfg_options)
    except ValueError as e:
        sys.exit(f'error: {e}')
    print(f'deploy-form checkpoint saved to {args.out}; load it with '
          '--cfg-options model.backbone.deploy=True')


if __name__ == '__main__':
    main()
