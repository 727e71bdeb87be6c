"""Draw the sparsification curves of a training run as a PNG.

    python tools/plot_curves.py WORK_DIR|SCALARS_JSON --out FILE.png [--metric NAME]
                                [--metric-by-iter]

Density of the LGC and SFR layers and the live FLOPs that SparsifyHook logged, against
the training iteration, with the validation metric below, from mmengine's
<work_dir>/<timestamp>/vis_data/scalars.json (the newest run of a work dir).
"""
import argparse
import sys

from mmcnv2.analysis.curves import plot_sparsification_curves


def main():
    parser = argparse.ArgumentParser(description='Sparsification curves of a training run')
    parser.add_argument('path', help='work dir of the run, or its vis_data/scalars.json')
    parser.add_argument('--out', required=True, help='PNG file to write')
    parser.add_argument('--metric', help='validation metric (default: accuracy/top1 or '
                        'coco/bbox_mAP, whichever was logged)')
    parser.add_argument('--metric-by-iter', action='store_true',
                        help='the run logged validation by iteration '
                        '(LoggerHook log_metric_by_epoch=False)')
    args = parser.parse_args()
    try:
        curves = plot_sparsification_curves(args.path, args.out, args.metric,
                                            not args.metric_by_iter)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    last = {k: curves[k][-1] for k in ('density_lgc', 'density_sfr', 'live_mflops')}
    print(f"read {curves['file']}: {len(curves['iter'])} training records, "
          f"{len(curves['val'])} validations ({curves['metric']})")
    print('at iteration {}: '.format(curves['iter'][-1]) + ', '.join(
        f'{k} {v:.4g}' for k, v in last.items() if v is not None))
    print(f'figure: {args.out}')


if __name__ == '__main__':
    main()
