"""Latency of the deploy/fused forms against same-FLOPs peers, on this machine's CPU, and
training throughput and latency on a GPU (--device cuda).

    python tools/benchmark.py [--out work_dirs/benchmark.json] [--markdown]
                              [--models CondenseNetV2-A ...] [--threads 1 2] [--batches 1 8]
                              [--forms training deploy fused fused-python]
                              [--no-detectors] [--no-onnx]
                              [--runtimes onnxruntime openvino] [--int8]
                              [--whole-detectors [800 1344 416 416]]
                              [--malloc retain|default]
    python tools/benchmark.py --device cuda [--train-batch 64] [--batches 1 64] [--size 224]
                              [--amp bfloat16|float16|none] [--det-size 800 1333]
                              [--det-amp float16|bfloat16|none]
                              [--models ...] [--forms deploy fused] [--no-train]
                              [--no-detectors] [--out ...] [--markdown]
    python tools/benchmark.py --device cpu --train ...   # the device benchmark on the CPU
    python tools/benchmark.py --from-json work_dirs/benchmark.json [--markdown]

Times (medians with 25th-75th percentiles) our classifiers in training, deploy, fused and
fused-python (the fused form's loop in Python, CondenseNetV2 only) form and mmpretrain's
ShuffleNetV2 / MobileNetV2 / MobileNetV3 at 224 x 224, at 1 thread and all threads, batch 1
and 8; the deploy forms and their peers in onnxruntime; and RetinaNet detectors at
800 x 1333 (all threads). Prints a table with the ratio of each of ours to its
same-FLOPs ShuffleNetV2 and writes JSON with the machine and versions: first a summary (one
line per model and form, one column per setting), then every measurement. ``--from-json``
prints the tables of a saved run again without measuring. ``--malloc retain`` (the default)
keeps freed memory in the process so that no pass page-faults and no timing depends on what
ran before it; ``--malloc default`` measures glibc as it comes (see mmcnv2.analysis.timing).

``--device cuda`` (or ``--device cpu --train``, small settings for a check) runs
mmcnv2_tools.device_benchmark (beside this script) instead: training throughput (images/s of forward, loss,
backward and SGD step under autocast, in each model's faster memory layout) of our training
forms and the peers, latency of the deploy and fused forms and the peers at each batch, and
one RetinaNet training iteration at 800 x 1333 against RetinaNet-ShuffleNetV2-1.5x.
"""
import argparse
import os
import os.path as osp

from mmcnv2.apis.runtimes import RUNTIMES
from mmcnv2_tools.benchmark import (FORMS, MALLOC_POLICIES, OURS, WHOLE_DETECTOR_SIZES,
                                    format_summary, format_table, from_json, run_benchmark,
                                    to_json)
from mmcnv2_tools.device_benchmark import (AMP_DTYPES, DEVICES, INFERENCE_FORMS,
                                           run_device_benchmark)


def parse_args():
    parser = argparse.ArgumentParser(description='Benchmark deploy forms against peers')
    parser.add_argument('--out', default='work_dirs/benchmark.json', help='JSON output')
    parser.add_argument('--markdown', action='store_true', help='print a markdown table')
    parser.add_argument('--models', nargs='+', choices=sorted(OURS), help='subset of ours')
    parser.add_argument('--threads', nargs='+', type=int, help='default: 1 and all cores')
    parser.add_argument('--batches', nargs='+', type=int,
                        help='default: 1 8 on the CPU, 1 64 with --device cuda')
    parser.add_argument('--forms', nargs='+', choices=FORMS,
                        help='forms of ours (fused-python: the fused loop in Python, '
                        'CondenseNetV2 only); with --device: deploy fused')
    parser.add_argument('--device', choices=DEVICES, default='cpu',
                        help='cuda: training throughput and latency on the GPU')
    parser.add_argument('--train', action='store_true',
                        help='with --device cpu: run the device benchmark on the CPU')
    parser.add_argument('--no-train', action='store_true',
                        help='device benchmark: skip the classifier training steps')
    parser.add_argument('--train-batch', type=int, default=64, help='device benchmark')
    parser.add_argument('--size', type=int, default=224, help='input side of the classifiers')
    parser.add_argument('--amp', choices=list(AMP_DTYPES), default='bfloat16',
                        help='autocast dtype of the training steps (device benchmark)')
    parser.add_argument('--det-size', nargs=2, type=int, default=[800, 1333], metavar=('H', 'W'),
                        help='detector training input (device benchmark)')
    parser.add_argument('--det-amp', choices=list(AMP_DTYPES), default='float16',
                        help='autocast dtype of the detector iteration (mmcv has no bf16 focal '
                        'loss kernel)')
    parser.add_argument('--budget', type=float, default=1.0,
                        help='seconds of timed passes per measurement (min 5 passes)')
    parser.add_argument('--no-detectors', action='store_true', help='skip the detectors')
    parser.add_argument('--no-onnx', action='store_true', help='skip the ONNX runtimes')
    parser.add_argument('--runtimes', nargs='+', choices=RUNTIMES, default=['onnxruntime'],
                        help='runtimes of the ONNX files (default: onnxruntime)')
    parser.add_argument('--int8', action='store_true',
                        help='also time the ONNX files quantized to int8 (static, QDQ)')
    parser.add_argument('--whole-detectors', nargs='*', type=int, metavar='H W',
                        help='time whole RetinaNets (NMS included) in ONNX at these sizes '
                        '(default: 800 1344 416 416)')
    parser.add_argument('--malloc', choices=MALLOC_POLICIES, default='retain',
                        help='retain: freed memory stays in the process (no page faults); '
                        'default: the C library as it comes')
    parser.add_argument('--from-json', metavar='JSON',
                        help='print the tables of a saved run instead of measuring')
    return parser.parse_args()


def print_result(result: dict, markdown: bool):
    m = result['machine']
    print(f"\n{m['cpu']}, {m['cores']} cores; torch {m['torch']}, mmcv {m['mmcv']}, "
          f"mmpretrain {m['mmpretrain']}, mmdet {m['mmdet']}, onnxruntime {m['onnxruntime']}"
          + (f", openvino {m['openvino']}" if m.get('openvino') else ''))
    if m.get('gpu'):
        print(f"{m['gpu']} ({m['gpu_memory_gib']} GiB, compute capability {m['capability']}); "
              f"CUDA {m['cuda']}, cuDNN {m['cudnn']}, TF32 conv {m['tf32_conv']}, "
              f"TF32 matmul {m['tf32_matmul']}")
    print(result['settings']['timing'])
    if 'malloc' in result['settings']:
        print('malloc:', result['settings']['malloc'])
    print('\nSummary: ms (ratio to the same-FLOPs peer)\n')
    print(format_summary(result, markdown=markdown))
    print('\nEvery measurement\n')
    print(format_table(result, markdown=markdown))


def main():
    args = parse_args()
    if args.from_json:
        if not osp.isfile(args.from_json):
            raise SystemExit(f'--from-json: no such file: {args.from_json}')
        print_result(from_json(args.from_json), args.markdown)
        return
    if args.threads and any(t < 1 for t in args.threads):
        raise SystemExit(f'--threads must be positive, got {args.threads}')
    whole = args.whole_detectors
    if whole is not None and (len(whole) % 2 or any(v < 32 for v in whole)):
        raise SystemExit(f'--whole-detectors takes pairs H W of ints >= 32, got {whole}')
    whole = [] if whole is None else (
        [tuple(whole[i:i + 2]) for i in range(0, len(whole), 2)] or list(WHOLE_DETECTOR_SIZES))
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    if args.device == 'cuda' or args.train:
        result = run_device_benchmark(
            root, device=args.device, train_batch=args.train_batch,
            batches=args.batches or [1, 64], size=args.size,
            forms=args.forms or list(INFERENCE_FORMS), models=args.models,
            train=not args.no_train, detectors=not args.no_detectors,
            det_size=tuple(args.det_size), amp=args.amp, det_amp=args.det_amp,
            budget_s=args.budget)
    else:
        result = run_benchmark(root, threads=args.threads, batches=args.batches or [1, 8], size=args.size,
                               forms=args.forms or list(FORMS), models=args.models,
                               detectors=not args.no_detectors,
                               onnx=() if args.no_onnx else ('CondenseNetV2-A', 'CondenseNetV2-B',
                                                             'CondenseNetV2-C',
                                                             'SFR-ShuffleNetV2-1.0x'),
                               budget_s=args.budget, malloc=args.malloc,
                               runtimes=args.runtimes, int8=args.int8, whole_detectors=whole)
    print_result(result, args.markdown)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    to_json(result, args.out)
    print(f'\nJSON: {args.out}')


if __name__ == '__main__':
    main()
