"""Draw the paper's Figures 6 and 7 from a training-form checkpoint.

    python tools/visualize_connections.py CKPT --out FILE.png [--condensenet CKPT2]
                                          [--stages 0 1 ...]

Mean absolute non-pruned LGC weight between each input feature block and each layer, per
filter group (Fig. 6) and per layer (Fig. 7), for every dense block of a CondenseNetV2
checkpoint and, with --condensenet, of a CondenseNet checkpoint below it. One colour scale from
0 per row of panels; white: pruned; hatched grey: features not produced yet for that layer.
"""
import argparse
import sys

from mmcnv2.analysis.connections import plot_connections


def main():
    parser = argparse.ArgumentParser(description='Connection-strength figures (paper Figs 6/7)')
    parser.add_argument('checkpoint', help='CondenseNetV2 checkpoint, training form')
    parser.add_argument('--out', required=True, help='PNG file to write')
    parser.add_argument('--condensenet',
                        help='a CondenseNet checkpoint to draw below it, for comparison')
    parser.add_argument('--stages', nargs='+', type=int, help='dense blocks to draw (0-based)')
    args = parser.parse_args()
    try:
        models = plot_connections(args.checkpoint, args.out, args.condensenet, args.stages)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    for name, matrices in models.items():
        print(f'{name}: blocks ' + ', '.join(
            f"{s}: {m['per_layer'].shape[1]} layers x {m['groups']} groups"
            for s, m in matrices.items()))
    print(f'figure: {args.out}')


if __name__ == '__main__':
    main()
