"""Evaluate a trained checkpoint in training form and in deploy form, side by side.

    python tools/deploy_check.py CONFIG CHECKPOINT [--out DEPLOY.pth [--force]] [--cfg-options ...]

Prints the test metrics, FLOPs and params (the paper's count) of both forms and,
with --out, saves the deploy-form checkpoint (never over CHECKPOINT; an existing file only
with --force).
"""
import argparse

from mmcnv2.apis import INPUT_ERRORS, compare_forms
from mmcnv2_tools.cli import add_cfg_options, exit_on


def parse_args():
    parser = argparse.ArgumentParser(description='Compare training and deploy forms')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', help='save the deploy-form checkpoint here')
    parser.add_argument('--force', action='store_true', help='overwrite --out if it exists')
    add_cfg_options(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    with exit_on(INPUT_ERRORS + (ValueError, )):
        r = compare_forms(args.config, args.checkpoint, args.out, args.cfg_options, args.force)
    print('\n' + '=' * 72)
    print(f"{'form':<10}{'metrics':<36}{'FLOPs':>12}{'params':>12}")
    for form in ('training', 'deploy'):
        m = ', '.join(f'{k}={v:.2f}' for k, v in r[form]['metrics'].items())
        print(f"{form:<10}{m:<36}{r[form]['paper_flops'] / 1e6:>11.2f}M"
              f"{r[form]['paper_params'] / 1e6:>11.4f}M")
    same = r['training']['metrics'] == r['deploy']['metrics']
    print(f"metrics identical after conversion: {'yes' if same else 'NO'}")
    if args.out:
        print(f'deploy checkpoint: {args.out}')
    print('=' * 72)


if __name__ == '__main__':
    main()
