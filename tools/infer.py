"""Detect objects in images and write visualised detections.

    python tools/infer.py CONFIG CHECKPOINT IMAGE [IMAGE ...] --out-dir DIR
                          [--score-thr 0.3] [--device cpu]

Pictures are written to DIR/vis/, predictions (json) to DIR/preds/.
"""
import argparse

from mmengine.config import Config, DictAction

from mmcnv2.apis.inference import infer_images


def parse_args():
    parser = argparse.ArgumentParser(description='Run a detector on images')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('images', nargs='+', help='image files or folders')
    parser.add_argument('--out-dir', required=True, help='where to write the results')
    parser.add_argument('--score-thr', type=float, default=0.3)
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
    infer_images(config, args.checkpoint, args.images, args.out_dir, args.score_thr,
                 args.device, args.batch_size)
    print(f'visualised detections: {args.out_dir}/vis, predictions: {args.out_dir}/preds')


if __name__ == '__main__':
    main()
