"""Detect objects in images, or classify them; write pictures and predictions.

    python tools/infer.py CONFIG CHECKPOINT IMAGE_OR_FOLDER [...] --out-dir DIR
                          [--score-thr 0.3] [--max-vis-side 1333] [--topk 5] [--device cpu]
    python tools/infer.py CONFIG MODEL.onnx IMAGE_OR_FOLDER [...] --out-dir DIR
                          --backend onnxruntime [--score-thr 0.3] [--max-vis-side 1333]

The config's ``default_scope`` chooses the task: an mmdet config detects, an mmpretrain
config classifies. Pictures are written to DIR/vis/<name>, predictions to
DIR/preds/<stem>.json: for a detector the boxes scoring above --score-thr (labels, scores,
bboxes in the input's pixels), for a classifier the --topk labels by score (labels, scores,
class names). The model is built in the form its checkpoint holds. With --backend onnxruntime
(detection) the detections come from a whole detector exported to ONNX from CONFIG
(tools/export_onnx.py --whole-detector), run in onnxruntime in the file's batch size; the
pictures and predictions are made as for PyTorch. Files that cannot be read
as images are reported and skipped, the others processed, and the exit status is then 1.
"""
import argparse
import sys

from mmengine.config import Config, DictAction

from mmcnv2.apis import INPUT_ERRORS
from mmcnv2.apis.inference import (DEFAULT_MAX_VIS_SIDE, DETECTION_BACKENDS, classify_images,
                                   infer_images)
from mmcnv2_tools.cli import exit_on


def parse_args():
    parser = argparse.ArgumentParser(
        description='Run a detector (mmdet config) or a classifier (mmpretrain config) on '
        'images; write pictures (DIR/vis) and predictions (DIR/preds)')
    parser.add_argument('config')
    parser.add_argument('checkpoint', help='the checkpoint; with --backend onnxruntime the '
                        'whole detector exported from CONFIG (.onnx)')
    parser.add_argument('images', nargs='+',
                        help='image files, or folders (their files with an image extension); '
                        'a folder without images is an error, a file that is not a readable '
                        'image is reported and skipped (exit status 1)')
    parser.add_argument('--out-dir', required=True, help='where to write the results')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: draw and save only boxes scoring above this (default '
                        '0.3; 0 keeps every box the model returns)')
    parser.add_argument('--max-vis-side', type=int, default=DEFAULT_MAX_VIS_SIDE,
                        help='draw images larger than this (longest side, pixels) on a copy '
                        'scaled down to it, boxes scaled alike: mmdet draws at about 120 bytes '
                        'a pixel, gigabytes for a huge image; predictions stay in the input\'s '
                        f'pixels; 0 draws at full resolution (default {DEFAULT_MAX_VIS_SIDE})')
    parser.add_argument('--topk', type=int, default=5,
                        help='classification: the labels to draw and save, best first '
                        '(default 5)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--batch-size', type=int,
                        help='images per forward pass (default 1; onnxruntime: the ONNX '
                        "file's fixed batch)")
    parser.add_argument('--backend', choices=DETECTION_BACKENDS, default='pytorch',
                        help='detection: run the checkpoint in PyTorch (default), or a whole '
                        'detector exported to ONNX in onnxruntime')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, e.g. model.backbone.deploy=True '
                        'for a deploy-form checkpoint')
    return parser.parse_args()


def main():
    args = parse_args()
    try:
        config = Config.fromfile(args.config)
    except FileNotFoundError as e:
        sys.exit(f'error: {e}')
    scope = config.get('default_scope')
    if scope not in ('mmdet', 'mmpretrain'):
        sys.exit(f"error: {args.config}: default_scope must be 'mmdet' (detection) or "
                 f"'mmpretrain' (classification), got {scope!r}")
    if scope != 'mmdet' and args.backend != 'pytorch':
        sys.exit(f'error: --backend {args.backend} runs whole detectors (mmdet configs); '
                 f'{args.config} is a classification config')
    with exit_on(INPUT_ERRORS + (FileNotFoundError, ValueError)):
        if scope == 'mmdet':
            result = infer_images(config, args.checkpoint, args.images, args.out_dir,
                                  args.score_thr, args.device, args.batch_size, args.max_vis_side,
                                  args.cfg_options, backend=args.backend)
            kept = f'boxes scoring above {args.score_thr}'
        else:
            result = classify_images(config, args.checkpoint, args.images, args.out_dir,
                                     args.topk, args.device, args.batch_size or 1,
                                     cfg_options=args.cfg_options)
            kept = f'top-{args.topk} labels'
    done = len(result['predictions'])
    print(f'\n{done} image(s): pictures in {args.out_dir}/vis, predictions in '
          f'{args.out_dir}/preds ({kept})')
    if result['failed']:
        for path, reason in result['failed'].items():
            print(f'skipped {path}: {reason}', file=sys.stderr)
        sys.exit(f'error: {len(result["failed"])} input file(s) could not be read as images '
                 f'(listed above); the other {done} were processed')


if __name__ == '__main__':
    main()
