"""Write files so that a crash leaves either the old file or the new one, never a part.

A file is written under a temporary name in the folder of its final name,
flushed to disk, and renamed into place in one step (``os.replace``, atomic on
POSIX and Windows within one file system); then the folder entry is flushed
too. A process killed at any moment leaves the previous version intact, plus
at most a stale ``.<name>.incomplete`` file that nothing reads.
"""
import contextlib
import os
import os.path as osp
from typing import Iterator

#: Suffix of the temporary files; no mmengine/mmdet checkpoint pattern matches it.
INCOMPLETE_SUFFIX = '.incomplete'


def temporary_path(path: str) -> str:
    """The temporary name under which ``path`` is written: ``<dir>/.<name>.incomplete``.

    Example:
        >>> temporary_path('work_dirs/run/epoch_3.pth')
        'work_dirs/run/.epoch_3.pth.incomplete'
    """
    folder, name = osp.split(path)
    return osp.join(folder, f'.{name}{INCOMPLETE_SUFFIX}')


def is_temporary(name: str) -> bool:
    """Whether a file name is one of :func:`temporary_path`'s.

    Example:
        >>> is_temporary('.epoch_3.pth.incomplete'), is_temporary('epoch_3.pth')
        (True, False)
    """
    name = osp.basename(name)
    return name.startswith('.') and name.endswith(INCOMPLETE_SUFFIX)


def _fsync_file(path: str):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: str):
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder or '.', os.O_RDONLY)
    except OSError:  # e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def commit(temporary: str, path: str):
    """Flush ``temporary`` to disk and rename it to ``path`` in one step."""
    _fsync_file(temporary)
    os.replace(temporary, path)
    _fsync_folder(osp.dirname(path))


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[str]:
    """Yield the temporary path to write; on success it becomes ``path`` in one step.

    If the body raises, the temporary file is removed and ``path`` is left as
    it was. Folders are created.

    Example:
        >>> import os, tempfile
        >>> out = os.path.join(tempfile.mkdtemp(), 'a', 'result.txt')
        >>> with atomic_output(out) as tmp:
        ...     with open(tmp, 'w') as f:
        ...         _ = f.write('done')
        >>> open(out).read(), sorted(os.listdir(os.path.dirname(out)))
        ('done', ['result.txt'])
    """
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = temporary_path(path)
    try:
        yield tmp
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    commit(tmp, path)


def save_atomically(obj, path: str):
    """``torch.save(obj, path)`` through :func:`atomic_output`: the one place that
    writes a checkpoint (:func:`mmcnv2.checkpoint.files.save_checkpoint_file`)."""
    import torch

    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def write_text_atomically(text: str, path: str):
    """Write ``text`` to ``path`` through :func:`atomic_output`."""
    with atomic_output(path) as tmp:
        with open(tmp, 'w') as f:
            f.write(text)
