"""INT8 static post-training quantization of an exported file, calibrated on the config's data.

    python tools/quantize_onnx.py CONFIG MODEL.onnx OUT.onnx [--calib-images 64]
                                  [--calib-split train|val|test] [--no-per-channel]
                                  [--activations int8|uint8]
                                  [--evaluate [--runtime onnxruntime|openvino] [--threads 1]]
                                  [--cfg-options ...]

MODEL.onnx is a file of tools/export_onnx.py (a classifier, a backbone, or a whole detector
with --whole-detector) exported from CONFIG. The calibration images are the first
--calib-images of the config's --calib-split (default: the training images), through the
config's own test pipeline and data preprocessor. OUT.onnx is a QDQ graph: int8 activations
(--activations uint8: uint8, ONNX Runtime's advice for x86) and per-channel int8 weights of
the Conv / Gemm / MatMul nodes, the rest in float32.

--evaluate scores MODEL.onnx and OUT.onnx side by side: a classifier's top-1 on the config's
test split, a whole detector's COCO bbox mAP on its val split (onnxruntime), and the latency
of each at batch 1 in --runtime with --threads threads.
"""
import argparse

from mmcnv2.apis import INPUT_ERRORS
from mmcnv2.apis.onnx_eval import compare_precisions
from mmcnv2.apis.quantize import ACTIVATION_TYPES, SPLITS, calibration_feeds, quantize_onnx
from mmcnv2.apis.runtimes import RUNTIMES
from mmcnv2_tools.cli import add_cfg_options, exit_on


def parse_args():
    parser = argparse.ArgumentParser(description='INT8 quantization of an exported ONNX file')
    parser.add_argument('config')
    parser.add_argument('model', help='the float32 .onnx file (tools/export_onnx.py)')
    parser.add_argument('out', help='the int8 .onnx file to write')
    parser.add_argument('--calib-images', type=int, default=64,
                        help='calibration images (default 64)')
    parser.add_argument('--calib-split', choices=SPLITS, default='train',
                        help='split of the config the calibration images come from')
    parser.add_argument('--no-per-channel', action='store_true',
                        help='one scale per weight tensor instead of per output channel')
    parser.add_argument('--activations', choices=ACTIVATION_TYPES, default='int8',
                        help='type of the quantized activations (default int8)')
    parser.add_argument('--evaluate', action='store_true',
                        help='accuracy and latency of the float32 and int8 files side by side')
    parser.add_argument('--runtime', choices=RUNTIMES, default='onnxruntime',
                        help='--evaluate: the runtime of the timing')
    parser.add_argument('--threads', type=int, default=1, help='--evaluate: threads (0: all)')
    add_cfg_options(parser)
    args = parser.parse_args()
    if args.calib_images < 1:
        parser.error(f'--calib-images must be >= 1, got {args.calib_images}')
    if args.threads < 0:
        parser.error(f'--threads must be >= 0, got {args.threads}')
    return args


def main():
    args = parse_args()
    with exit_on(INPUT_ERRORS + (ValueError, FileNotFoundError)):
        run(args)


def run(args):
    feeds = calibration_feeds(args.config, args.model, args.calib_images, args.calib_split,
                              args.cfg_options)
    r = quantize_onnx(args.model, args.out, feeds, per_channel=not args.no_per_channel,
                      activations=args.activations)
    print(f"wrote {r['out']}: {r['num_quantize']} QuantizeLinear and {r['num_dequantize']} "
          f'DequantizeLinear nodes ({args.activations} activations), calibrated on '
          f'{args.calib_images} images of the {args.calib_split} split')
    if not args.evaluate:
        return
    rows = compare_precisions(args.config, {'fp32': args.model, args.activations: args.out},
                              args.runtime, args.threads, cfg_options=args.cfg_options)
    metrics = [k for k in ('top1', 'bbox_mAP', 'bbox_mAP_50') if k in rows[0]]
    print(f'\nprecision  {"  ".join(f"{m:>11}" for m in metrics)}  '
          f'{args.runtime} {args.threads or "all"} thr b1 ms')
    for row in rows:
        print(f"{row['label']:<9}  {'  '.join(f'{row[m]:>11.3f}' for m in metrics)}  "
              f"{row['timing']}")


if __name__ == '__main__':
    main()
