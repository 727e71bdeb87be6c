"""What the command-line scripts share: common arguments, and bad input reported as one
``error: ...`` line instead of a traceback."""
import argparse
import contextlib
import sys
from typing import Iterator, Tuple, Type

from mmengine.config import DictAction

from mmcnv2.apis import INPUT_ERRORS


def add_cfg_options(parser: argparse.ArgumentParser):
    """``--cfg-options key=value ...``: overrides of the config."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value')


def add_launcher(parser: argparse.ArgumentParser):
    """``--launcher`` and the ``--local-rank`` that ``torch.distributed.launch`` passes."""
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


@contextlib.contextmanager
def exit_on(errors: Tuple[Type[BaseException], ...] = INPUT_ERRORS) -> Iterator[None]:
    """Turn ``errors`` raised in the body into ``sys.exit('error: <message>')``.

    Example:
        >>> with exit_on((ValueError, )):
        ...     raise ValueError('no such config')
        Traceback (most recent call last):
        ...
        SystemExit: error: no such config
    """
    try:
        yield
    except errors as e:
        sys.exit(f'error: {e}')
