"""Detect objects in images; write the pictures and the predictions drawn in them.

    python tools/infer.py CONFIG CHECKPOINT IMAGE_OR_FOLDER [...] --out-dir DIR
                          [--score-thr 0.3] [--max-vis-side 1333] [--device cpu]

Pictures are written to DIR/vis/<name>, predictions (json: labels, scores, bboxes in the
input's pixels) to DIR/preds/<stem>.json; both hold the boxes scoring above --score-thr.
Files that cannot be read as images are reported and skipped, the others processed, and the
exit status is then 1.
"""
import argparse
import sys

from mmengine.config import Config, DictAction

from mmcnv2.apis.inference import DEFAULT_MAX_VIS_SIDE, infer_images


def parse_args():
    parser = argparse.ArgumentParser(
        description='Run a detector on images; write pictures (DIR/vis) and predictions '
        '(DIR/preds) of the boxes scoring above --score-thr')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('images', nargs='+',
                        help='image files, or folders (their files with an image extension); '
                        'a folder without images is an error, a file that is not a readable '
                        'image is reported and skipped (exit status 1)')
    parser.add_argument('--out-dir', required=True, help='where to write the results')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='draw and save only boxes scoring above this (default 0.3; 0 '
                        'keeps every box the model returns)')
    parser.add_argument('--max-vis-side', type=int, default=DEFAULT_MAX_VIS_SIDE,
                        help='draw images larger than this (longest side, pixels) on a copy '
                        'scaled down to it, boxes scaled alike: mmdet draws at about 120 bytes '
                        'a pixel, gigabytes for a huge image; predictions stay in the input\'s '
                        f'pixels; 0 draws at full resolution (default {DEFAULT_MAX_VIS_SIDE})')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, e.g. model.backbone.deploy=True '
                        'for a deploy-form checkpoint')
    return parser.parse_args()


def main():
    args = parse_args()
    config = args.config
    if args.cfg_options:
        config = Config.fromfile(args.config)
        config.merge_from_dict(args.cfg_options)
    try:
        result = infer_images(config, args.checkpoint, args.images, args.out_dir,
                              args.score_thr, args.device, args.batch_size, args.max_vis_side)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    done = len(result['predictions'])
    print(f'\n{done} image(s): pictures in {args.out_dir}/vis, predictions in '
          f'{args.out_dir}/preds (boxes scoring above {args.score_thr})')
    if result['failed']:
        for path, reason in result['failed'].items():
            print(f'skipped {path}: {reason}', file=sys.stderr)
        sys.exit(f'error: {len(result["failed"])} input file(s) could not be read as images '
                 f'(listed above); the other {done} were processed')


if __name__ == '__main__':
    main()
