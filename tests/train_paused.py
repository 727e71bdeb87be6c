"""Run a tool with a pause at a chosen moment of checkpoint writing, to be killed there.

    python tests/train_paused.py POINT N MARKER tools/train.py CONFIG [args ...]

The N-th time (1-based) the process reaches POINT, it creates the file MARKER and
sleeps until it is killed (the test sends SIGKILL). POINT is one of:

* ``write``: a ``.pth`` file is being written: half of its bytes are on disk;
* ``rename``: a complete temporary file is about to be renamed to its ``.pth`` name;
* ``pointer``: ``last_checkpoint`` is about to be replaced;
* ``remove``: a ``.pth`` file is about to be removed.

Only the process's own calls are intercepted; the tool runs unchanged otherwise.
"""
import os
import os.path as osp
import runpy
import sys
import time

POINTS = ('write', 'rename', 'pointer', 'remove')


def main():
    point, n, marker, tool, *args = sys.argv[1:]
    if point not in POINTS:
        raise SystemExit(f'POINT must be one of {POINTS}, got {point!r}')
    seen = [0]

    def reached() -> bool:
        seen[0] += 1
        return seen[0] == int(n)

    def pause():
        with open(marker, 'w') as f:
            f.write(str(os.getpid()))
        while True:
            time.sleep(60)

    if point == 'write':
        from mmengine.fileio.backends.local_backend import LocalBackend
        put = LocalBackend.put

        def paused_put(self, obj, filepath):
            if '.pth' in osp.basename(str(filepath)) and reached():
                with open(filepath, 'wb') as f:
                    f.write(obj[:len(obj) // 2])
                    f.flush()
                    os.fsync(f.fileno())
                pause()
            return put(self, obj, filepath)

        LocalBackend.put = paused_put
    elif point in ('rename', 'pointer'):
        replace = os.replace

        def paused_replace(src, dst, *a, **k):
            name = osp.basename(str(dst))
            if (name.endswith('.pth') if point == 'rename' else name == 'last_checkpoint') \
                    and reached():
                pause()
            return replace(src, dst, *a, **k)

        os.replace = paused_replace
    else:
        remove = os.remove

        def paused_remove(path, *a, **k):
            if str(path).endswith('.pth') and reached():
                pause()
            return remove(path, *a, **k)

        os.remove = paused_remove

    sys.argv = [tool, *args]
    sys.path.insert(0, osp.dirname(osp.abspath(tool)))  # as `python tools/train.py` has it
    runpy.run_path(tool, run_name='__main__')


if __name__ == '__main__':
    main()
