"""Convert a trained training-form checkpoint into the deploy (condensed) form.

    python tools/convert.py CONFIG CHECKPOINT OUT [--force] [--cfg-options key=value ...]

Works for any config whose model holds LGC/SFR layers (classifiers and detectors), with or
without EMA (mmengine's EMAHook stores the EMA weights in the checkpoint's state_dict).
OUT is never CHECKPOINT itself, an existing OUT is only replaced with --force, missing
folders are created, and OUT is written atomically. mmcnv2's tools/test.py and
tools/infer.py load the result as it is; elsewhere use --cfg-options model.backbone.deploy=True.
"""
import argparse

from mmcnv2.apis import INPUT_ERRORS, convert_checkpoint
from mmcnv2_tools.cli import add_cfg_options, exit_on


def parse_args():
    parser = argparse.ArgumentParser(description='Convert a checkpoint to deploy form')
    parser.add_argument('config')
    parser.add_argument('checkpoint', help='training-form checkpoint (fully sparsified)')
    parser.add_argument('out', help='the deploy-form checkpoint to write')
    parser.add_argument('--force', action='store_true', help='overwrite OUT if it exists')
    add_cfg_options(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    with exit_on(INPUT_ERRORS + (ValueError, )):
        convert_checkpoint(args.config, args.checkpoint, args.out, args.cfg_options,
                           force=args.force)
    print(f'deploy-form checkpoint saved to {args.out}; mmcnv2\'s tools load it as it is, '
          'elsewhere use --cfg-options model.backbone.deploy=True')


if __name__ == '__main__':
    main()
