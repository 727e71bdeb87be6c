"""Export a trained model's deploy form to ONNX and check it in onnxruntime (or OpenVINO).

    python tools/export_onnx.py CONFIG CHECKPOINT OUT.onnx [--shape H W] [--backbone-only]
                                [--whole-detector [--batch N]] [--no-verify]
                                [--runtime onnxruntime openvino] [--cfg-options ...]

CHECKPOINT is a training-form checkpoint whose LGC/SFR layers finished sparsifying, or a
deploy-form one (tools/convert.py). Classifiers export their logits, detectors their
backbone's feature maps (feat0, feat1, ...). The input size is fixed, the batch axis dynamic.
OUT.onnx is one self-contained file (its folder is created). The check runs onnxruntime at
batch 1 and 4 with its default threading and with 1 thread against PyTorch (relative 1e-4);
--runtime openvino runs the same check in OpenVINO (float32), --runtime onnxruntime openvino
in both.

--whole-detector (RetinaNet and Faster R-CNN configs): the whole detector, box decoding and NMS
included (Faster R-CNN: RPN proposals, RoIAlign, box head), for batches of --batch images of one
padded size (default: the test pipeline's scale); it returns boxes in the original images'
pixels (tools/infer.py --backend onnxruntime and mmcnv2.apis.detector_onnx.OnnxDetector run it on
image files). Its check always runs: onnxruntime's boxes against PyTorch's; with --runtime
openvino, also OpenVINO's boxes against onnxruntime's on a random input.
"""
import argparse

from mmcnv2.apis import INPUT_ERRORS
from mmcnv2.apis.detector_onnx import export_detector_onnx
from mmcnv2.apis.export import export_onnx
from mmcnv2.apis.onnx_eval import detector_runtime_match
from mmcnv2.apis.runtimes import RUNTIMES
from mmcnv2_tools.cli import add_cfg_options, exit_on


def parse_args():
    parser = argparse.ArgumentParser(description='Export a deploy-form model to ONNX')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('out', help='the .onnx file to write')
    parser.add_argument('--shape', nargs=2, type=int, metavar=('H', 'W'),
                        help='input size (default 224 224; detectors 800 1333)')
    parser.add_argument('--backbone-only', action='store_true',
                        help="export the backbone's feature maps of a classifier")
    parser.add_argument('--whole-detector', action='store_true',
                        help='a RetinaNet or Faster R-CNN config: backbone, neck, heads, box '
                        'decoding and NMS')
    parser.add_argument('--batch', type=int, default=1,
                        help='--whole-detector: images per run (fixed; default 1)')
    parser.add_argument('--no-verify', action='store_true', help='skip the onnxruntime check')
    parser.add_argument('--runtime', nargs='+', choices=RUNTIMES, default=['onnxruntime'],
                        help='runtimes of the check (default: onnxruntime)')
    add_cfg_options(parser)
    args = parser.parse_args()
    if args.whole_detector and args.backbone_only:
        parser.error('--whole-detector and --backbone-only exclude each other')
    if args.batch != 1 and not args.whole_detector:
        parser.error('--batch is for --whole-detector (the other exports have a dynamic batch)')
    return args


def main():
    args = parse_args()
    with exit_on(INPUT_ERRORS + (ValueError, )):  # bad input: one 'error: ...' line
        export(args)


def export(args):
    if args.whole_detector:
        r = export_detector_onnx(args.config, args.checkpoint, args.out, args.shape,
                                 batch_size=args.batch, cfg_options=args.cfg_options)
        print(f"wrote {r['out']}: inputs {r['input_shape']} + img_shape + scale_factor, "
              f"output dets (x1 y1 x2 y2 score label image)")
        print(f"onnxruntime vs PyTorch on a random input: {r['num_ort_dets']} and "
              f"{r['num_dets']} boxes, {r['matched']:.1%} matched (IoU >= 0.99, score "
              "within 1e-3)")
        for runtime in args.runtime:
            if runtime == 'onnxruntime':
                continue
            matched, n_ort, n_got = detector_runtime_match(args.out, runtime)
            if abs(n_got - n_ort) > 0.02 * n_ort or matched < 0.98:
                raise RuntimeError(f'{runtime} disagrees with onnxruntime: {n_got} and {n_ort} '
                                 f'boxes, {matched:.1%} matched (rounding alone leaves >= 98%)')
            print(f'{runtime} vs onnxruntime on a random input: {n_got} and {n_ort} boxes, '
                  f'{matched:.1%} matched (IoU >= 0.99, score within 1e-3)')
        return
    r = export_onnx(args.config, args.checkpoint, args.out, args.shape,
                    backbone_only=True if args.backbone_only else None,
                    verify=not args.no_verify, cfg_options=args.cfg_options,
                    runtimes=args.runtime)
    print(f"wrote {' and '.join(r['files'])}: input {r['input_shape']} (batch dynamic), "
          f"outputs {r['output_names']}")
    if len(r['files']) > 1:
        print(f"the weights are in {r['files'][1]} (over ONNX's 2 GB limit): keep it beside "
              f"{r['out']}")
    for runtime, rel in r.get('rel_diff_by_runtime', {}).items():
        print(f'{runtime} vs PyTorch (batch 1 and 4, default and 1 intra-op thread): max '
              f'relative difference {rel:.2e} (<= 1e-4)')


if __name__ == '__main__':
    main()
