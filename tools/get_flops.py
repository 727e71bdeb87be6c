"""FLOPs and params of a config's model in deploy form, counted the paper's way.

    python tools/get_flops.py CONFIG [--shape H W] [--cfg-options key=value ...]
    python tools/get_flops.py --paper     # every model of the paper's tables, side by side

Prints the count of the CondenseNetV2 release's ``measure_model`` rules (see
``mmcnv2.analysis.complexity``) next to mmengine's own count, at the config's test
size unless ``--shape`` is given (detectors: the test pipeline's Resize scale, padded
as the data preprocessor pads); for a detector also its backbone alone at 224x224,
the input of the paper's Table 7 "backbone FLOPs".
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config, DictAction

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args():
    parser = argparse.ArgumentParser(description='Count FLOPs and params (deploy form)')
    parser.add_argument('config', nargs='?', help='config file path')
    parser.add_argument('--paper', action='store_true',
                        help="reproduce the paper's FLOPs/params tables for every model here")
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help="input size (default: the config's test size, else 224 224)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value')
    return parser.parse_args()


def print_paper_table():
    from mmengine.utils import ProgressBar

    from mmcnv2_tools.paper_tables import PAPER_ENTRIES, format_table, paper_table

    # counting every model takes minutes: a progress bar (k/N) on stderr, the table on stdout
    bar = ProgressBar(len(PAPER_ENTRIES), file=sys.stderr)
    rows = paper_table(ROOT, progress=lambda k, n, entry: bar.update())
    sys.stderr.write('\n')
    print(format_table(rows))
    print("Deploy forms at 224x224 (CIFAR: 32x32), multiply-adds, the paper's counting rules.")


def main():
    args = parse_args()
    # arguments first: mmcnv2 (mmcv, mmdet, mmpretrain) takes seconds to import
    if args.shape is not None and min(args.shape) < 1:
        sys.exit(f'error: --shape H W must be two positive ints, got {args.shape[0]} '
                 f'{args.shape[1]}')
    if args.paper:
        if args.config is not None:
            sys.exit('error: give either a CONFIG or --paper, not both')
        print_paper_table()
        return
    if args.config is None:
        sys.exit('error: give a CONFIG, or --paper')
    if not osp.isfile(args.config):
        sys.exit(f'error: CONFIG {args.config} is not a file: give the path of an mmpretrain '
                 'or mmdet config, e.g. configs/imagenet/cnv2_a.py')
    import mmcnv2  # noqa: F401
    from mmcnv2.analysis.complexity import BACKBONE_SHAPE, config_complexity

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    r = config_complexity(cfg, None if args.shape is None else tuple(args.shape))
    h, w = r['shape']
    detector = 'backbone_flops' in r
    what = 'whole detector' if detector else 'whole model'
    print(f'Config: {args.config} (deploy form)')
    print(f"Input: 3x{h}x{w}, {r['shape_source']}")
    if 'proposals' in r:
        print(f"RoI head on {r['proposals']} proposals (the RPN's max_per_img at test time)")
    print(f"  {what}, paper's count : FLOPs {r['paper_flops'] / 1e6:10.2f}M   "
          f"params {r['paper_params'] / 1e6:7.3f}M")
    print(f"  {what}, mmengine count: FLOPs {r['mmengine_flops'] / 1e6:10.2f}M   "
          f"params {r['mmengine_params'] / 1e6:7.3f}M")
    if detector:
        bh, bw = BACKBONE_SHAPE
        print(f"  backbone alone at {bh}x{bw}, paper's count: FLOPs "
              f"{r['backbone_flops'] / 1e6:8.2f}M   params {r['backbone_params'] / 1e6:7.3f}M")
        print("The paper's Table 7 lists backbone FLOPs at 224x224; its figures are those of "
              'the ImageNet classifiers (classification head included: see --paper).')
    print("FLOPs are multiply-adds. The paper's rules also count activations and pooling "
          'and skip normalisation; mmengine has its own per-operator rules. Params of a '
          'module run several times (a shared head) count once, its FLOPs at every call.')


if __name__ == '__main__':
    main()
