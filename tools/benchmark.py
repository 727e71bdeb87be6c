"""Latency of the deploy/fused forms against same-FLOPs peers, on this machine's CPU.

    python tools/benchmark.py [--out work_dirs/benchmark.json] [--markdown]
                              [--models CondenseNetV2-A ...] [--threads 1 2] [--batches 1 8]
                              [--forms training deploy fused fused-python]
                              [--no-detectors] [--no-onnx]
                              [--malloc retain|default]
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
ran before it; ``--malloc default`` measures glibc as it comes (see mmcnv2.analysis.benchmark).
"""
import argparse
import os
import os.path as osp

from mmcnv2.analysis.benchmark import (FORMS, MALLOC_POLICIES, OURS, format_summary,
                                       format_table, from_json, run_benchmark, to_json)


def parse_args():
    parser = argparse.ArgumentParser(description='Benchmark deploy forms against peers')
    parser.add_argument('--out', default='work_dirs/benchmark.json', help='JSON output')
    parser.add_argument('--markdown', action='store_true', help='print a markdown table')
    parser.add_argument('--models', nargs='+', choices=sorted(OURS), help='subset of ours')
    parser.add_argument('--threads', nargs='+', type=int, help='default: 1 and all cores')
    parser.add_argument('--batches', nargs='+', type=int, default=[1, 8])
    parser.add_argument('--forms', nargs='+', default=list(FORMS), choices=FORMS,
                        help='forms of ours (fused-python: the fused loop in Python, '
                        'CondenseNetV2 only)')
    parser.add_argument('--budget', type=float, default=1.0,
                        help='seconds of timed passes per measurement (min 5 passes)')
    parser.add_argument('--no-detectors', action='store_true', help='skip the 800x1333 detectors')
    parser.add_argument('--no-onnx', action='store_true', help='skip onnxruntime')
    parser.add_argument('--malloc', choices=MALLOC_POLICIES, default='retain',
                        help='retain: freed memory stays in the process (no page faults); '
                        'default: the C library as it comes')
    parser.add_argument('--from-json', metavar='JSON',
                        help='print the tables of a saved run instead of measuring')
    return parser.parse_args()


def print_result(result: dict, markdown: bool):
    m = result['machine']
    print(f"\n{m['cpu']}, {m['cores']} cores; torch {m['torch']}, mmcv {m['mmcv']}, "
          f"mmpretrain {m['mmpretrain']}, mmdet {m['mmdet']}, onnxruntime {m['onnxruntime']}")
    print(result['settings']['timing'])
    print('malloc:', result['settings'].get('malloc', 'not recorded'))
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
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    result = run_benchmark(root, threads=args.threads, batches=args.batches,
                           forms=args.forms, models=args.models,
                           detectors=not args.no_detectors,
                           onnx=() if args.no_onnx else ('CondenseNetV2-A', 'CondenseNetV2-B',
                                                         'CondenseNetV2-C',
                                                         'SFR-ShuffleNetV2-1.0x'),
                           budget_s=args.budget, malloc=args.malloc)
    print_result(result, args.markdown)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    to_json(result, args.out)
    print(f'\nJSON: {args.out}')


if __name__ == '__main__':
    main()
