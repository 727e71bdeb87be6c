"""Convert a checkpoint of the official CondenseNetV2 release for mmpretrain.

    python tools/import_official.py SRC DST [--source {ema,model}] [--config CONFIG]

SRC is either official format: a training checkpoint (``state_dict`` and/or
``state_dict_ema``, any point of the schedule) or the converted release (bare
state dict with index buffers). DST loads into ``configs/imagenet/cnv2_{a,b,c}.py``
(training form), or with ``--cfg-options model.backbone.deploy=True`` for the
converted release. The file is read with ``torch.load(weights_only=True)``.
"""
import argparse
import sys

from mmengine.config import Config

from mmcnv2.checkpoint import OfficialCheckpointError, import_official


def parse_args():
    parser = argparse.ArgumentParser(description='Import an official CondenseNetV2 checkpoint')
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='output mmpretrain checkpoint')
    parser.add_argument('--source', choices=['ema', 'model'], default='ema',
                        help='for training checkpoints with both, which weights to take '
                        '(default: ema, as the official converter)')
    parser.add_argument('--config', help='check the result against this config\'s model '
                        '(with model.backbone.deploy set from the checkpoint\'s form)')
    return parser.parse_args()


def main():
    args = parse_args()
    model_cfg = None
    if args.config:
        model_cfg = Config.fromfile(args.config).model
    try:
        result = import_official(args.src, args.dst, args.source, model_cfg=model_cfg)
    except (OfficialCheckpointError, FileNotFoundError) as e:
        sys.exit(f'error: {e}')
    meta = result['meta']['mmcnv2']
    print(f"imported {args.src} ({meta['entry']}, {meta['form']} form, arch {meta['arch']!r})")
    if meta['form'] == 'training':
        print(f"sparsification stage of the least advanced layer: {meta['min_stage']}")
        print(f'saved {args.dst}: load it into the training-form config')
    else:
        print(f'saved {args.dst}: load it with --cfg-options model.backbone.deploy=True')


if __name__ == '__main__':
    main()
