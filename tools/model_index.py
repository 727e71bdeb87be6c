"""Write model-index.yml and configs/metafiles/*.yml from the paper's tables and the configs.

    python tools/model_index.py           # (re)write the files
    python tools/model_index.py --check   # exit 1 if a committed file is not the generated one

The figures come from tools/mmcnv2_tools/paper_tables.py (the paper's); names, epochs and batch
sizes from the configs. ``make model-index`` runs the first form.
"""
import argparse
import os
import os.path as osp
import sys

from mmcnv2.model_zoo import METAFILE_DIR
from mmcnv2_tools.model_index import model_index_files, outdated_model_index_files

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description='Generate the model index of mmcnv2')
    parser.add_argument('--check', action='store_true',
                        help='only compare the files on disk with the generated ones')
    args = parser.parse_args()
    files = model_index_files(ROOT)
    outdated = outdated_model_index_files(ROOT, files)
    if args.check:
        for path, why in outdated.items():
            print(f'{path}: {why}')
        if outdated:
            sys.exit('run python tools/model_index.py to update the model index')
        print(f'{len(files)} files up to date')
        return
    os.makedirs(osp.join(ROOT, METAFILE_DIR), exist_ok=True)
    for path, why in outdated.items():
        if why == 'not generated':
            os.remove(osp.join(ROOT, path))
            print(f'removed {path} (not generated)')
        else:
            with open(osp.join(ROOT, path), 'w') as f:
                f.write(files[path])
            print(f'wrote {path}')
    if not outdated:
        print(f'{len(files)} files up to date')


if __name__ == '__main__':
    main()
