"""FLOPs and params of a config's model in deploy form, counted the paper's way.

    python tools/get_flops.py CONFIG [--shape H W] [--cfg-options key=value ...]
    python tools/get_flops.py --paper     # every model of the paper's tables, side by side

Prints the count of the CondenseNetV2 release's ``measure_model`` rules (see
``mmcnv2.analysis.complexity``) next to mmengine's own count.
"""
import argparse

from mmengine.config import Config, DictAction

import mmcnv2  # noqa: F401
from mmcnv2.analysis.complexity import config_complexity


def parse_args():
    parser = argparse.ArgumentParser(description='Count FLOPs and params (deploy form)')
    parser.add_argument('config', nargs='?', help='config file path')
    parser.add_argument('--paper', action='store_true',
                        help="reproduce the paper's FLOPs/params tables for every model here")
    parser.add_argument('--shape', type=int, nargs=2, default=[224, 224], metavar=('H', 'W'),
                        help='input size (default: 224 224)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value')
    return parser.parse_args()


def main():
    args = parse_args()
    if args.paper:
        import os.path as osp

        from mmcnv2.analysis.paper_tables import format_table, paper_table
        root = osp.dirname(osp.dirname(osp.abspath(__file__)))
        print(format_table(paper_table(root)))
        print("Deploy forms at 224x224 (CIFAR: 32x32), multiply-adds, the paper's counting rules.")
        return
    if args.config is None:
        raise SystemExit('error: give a CONFIG, or --paper')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    r = config_complexity(cfg, tuple(args.shape))
    print(f'Config: {args.config}  input: 3x{args.shape[0]}x{args.shape[1]}  (deploy form)')
    print(f"  paper's count  : FLOPs {r['paper_flops'] / 1e6:9.2f}M   "
          f"params {r['paper_params'] / 1e6:7.3f}M")
    print(f"  mmengine count : FLOPs {r['mmengine_flops'] / 1e6:9.2f}M   "
          f"params {r['mmengine_params'] / 1e6:7.3f}M")
    print("FLOPs are multiply-adds. The paper's rules also count activations and pooling "
          'and skip normalisation; mmengine has its own per-operator rules.')


if __name__ == '__main__':
    main()
