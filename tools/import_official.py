"""Convert a checkpoint of the official CondenseNetV2 release for mmpretrain.

    python tools/import_official.py SRC DST [--source {ema,model}] [--config CONFIG] [--force]

SRC is either official format: a training checkpoint (``state_dict`` and/or
``state_dict_ema``, any point of the schedule) or the converted release (bare
state dict with index buffers). DST loads into ``configs/imagenet/cnv2_{a,b,c}.py``
in the form SRC has (mmcnv2's tools read it off the file; elsewhere add
``--cfg-options model.backbone.deploy=True`` for the converted release). The file is
read with ``torch.load(weights_only=True)``. DST is never SRC, an existing DST is only
replaced with --force, missing folders are created, and DST is written atomically.
"""
import argparse
import sys

from mmcnv2.apis import INPUT_ERRORS, load_config
from mmcnv2.checkpoint import OfficialCheckpointError, import_official
from mmcnv2.checkpoint.files import check_output_path, check_state_dict_fits, save_checkpoint_file
from mmcnv2.models.build import build_model


def parse_args():
    parser = argparse.ArgumentParser(description='Import an official CondenseNetV2 checkpoint')
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='output mmpretrain checkpoint')
    parser.add_argument('--source', choices=['ema', 'model'], default='ema',
                        help='for training checkpoints with both, which weights to take '
                        '(default: ema, as the official converter)')
    parser.add_argument('--config', help='check the result against this config\'s model '
                        '(built in the checkpoint\'s form)')
    parser.add_argument('--force', action='store_true', help='overwrite DST if it exists')
    return parser.parse_args()


def check_against_config(config: str, result: dict, src: str):
    """Raise unless the imported weights load exactly into ``config``'s model."""
    meta = result['meta']['mmcnv2']
    cfg = load_config(config)
    model = build_model(cfg.model, cfg.default_scope, form=meta['form'])
    check_state_dict_fits(model, result['state_dict'],
                          f"{src} (arch {meta['arch']!r}, {meta['form']} form)")


def main():
    args = parse_args()
    try:
        check_output_path(args.dst, [args.src], args.force)
        result = import_official(args.src, None, args.source)
        if args.config:
            check_against_config(args.config, result, args.src)
        save_checkpoint_file(dict(state_dict=result['state_dict'], meta=result['meta']),
                             args.dst, [args.src], args.force)
    except (OfficialCheckpointError, FileNotFoundError) + INPUT_ERRORS as e:
        sys.exit(f'error: {e}')
    meta = result['meta']['mmcnv2']
    print(f"imported {args.src} ({meta['entry']}, {meta['form']} form, arch {meta['arch']!r})")
    if meta['form'] == 'training':
        print(f"sparsification stage of the least advanced layer: {meta['min_stage']}")
        print(f'saved {args.dst}: load it into the training-form config')
    else:
        print(f'saved {args.dst}: mmcnv2\'s tools load it as it is; elsewhere use '
              '--cfg-options model.backbone.deploy=True')


if __name__ == '__main__':
    main()
