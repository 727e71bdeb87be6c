"""Export a trained model's deploy form to ONNX and check it in onnxruntime.

    python tools/export_onnx.py CONFIG CHECKPOINT OUT.onnx [--shape H W] [--backbone-only]
                                [--no-verify] [--cfg-options ...]

CHECKPOINT is a training-form checkpoint whose LGC/SFR layers finished sparsifying, or a
deploy-form one (tools/convert.py). Classifiers export their logits, detectors their
backbone's feature maps (feat0, feat1, ...). The input size is fixed, the batch axis dynamic.
OUT.onnx is one self-contained file (its folder is created). The check runs onnxruntime at
batch 1 and 4 with its default threading and with 1 thread against PyTorch (relative 1e-4).
"""
import argparse

from mmengine.config import DictAction

from mmcnv2.apis.export import export_onnx


def parse_args():
    parser = argparse.ArgumentParser(description='Export a deploy-form model to ONNX')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('out', help='the .onnx file to write')
    parser.add_argument('--shape', nargs=2, type=int, metavar=('H', 'W'),
                        help='input size (default 224 224; detectors 800 1333)')
    parser.add_argument('--backbone-only', action='store_true',
                        help="export the backbone's feature maps of a classifier")
    parser.add_argument('--no-verify', action='store_true', help='skip the onnxruntime check')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def main():
    args = parse_args()
    r = export_onnx(args.config, args.checkpoint, args.out, args.shape,
                    backbone_only=True if args.backbone_only else None,
                    verify=not args.no_verify, cfg_options=args.cfg_options)
    print(f"wrote {' and '.join(r['files'])}: input {r['input_shape']} (batch dynamic), "
          f"outputs {r['output_names']}")
    if len(r['files']) > 1:
        print(f"the weights are in {r['files'][1]} (over ONNX's 2 GB limit): keep it beside "
              f"{r['out']}")
    if 'max_rel_diff' in r:
        print('onnxruntime vs PyTorch (batch 1 and 4, default and 1 intra-op thread): max '
              f"relative difference {r['max_rel_diff']:.2e} (<= 1e-4)")


if __name__ == '__main__':
    main()
