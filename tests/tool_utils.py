"""Run the tools in this process, and make the broken checkpoint files that a crash, a bad
download or a wrong path leave."""
import os
import os.path as osp
import runpy
import sys

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def tool(script, *args):
    """Run ``tools/<script>`` in this process as ``python tools/<script> args`` would (its
    folder first on ``sys.path``); return what it passed to ``sys.exit`` (None when it
    returned normally)."""
    argv, path = sys.argv, list(sys.path)
    sys.argv = [script, *map(str, args)]
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    try:
        runpy.run_path(osp.join(ROOT, 'tools', script), run_name='__main__')
    except SystemExit as e:
        return e.code
    finally:
        sys.argv = argv
        sys.path[:] = path
    return None


def bad_checkpoints(folder):
    """Paths of a missing, an empty, a random-bytes and a truncated checkpoint file in
    ``folder`` (a ``pathlib.Path``), by kind."""
    good = folder / 'good.pth'
    torch.save({'state_dict': {'w': torch.randn(64, 64)}, 'meta': {}}, good)
    data = good.read_bytes()
    (folder / 'empty.pth').write_bytes(b'')
    (folder / 'random.pth').write_bytes(os.urandom(4096))
    (folder / 'truncated.pth').write_bytes(data[:len(data) // 2])
    return {name: str(folder / f'{name}.pth')
            for name in ('missing', 'empty', 'random', 'truncated')}
