"""A checkpoint hook that a process killed at any moment cannot cost the run."""
import contextlib
import functools
import os
import os.path as osp
from typing import List

from mmengine.dist import is_main_process
from mmengine.fileio import FileClient, LocalBackend
from mmengine.hooks import CheckpointHook

from ...checkpoint.atomic import atomic_output, is_temporary, write_text_atomically
from ...registry import register

#: Runtime-info key (saved in every checkpoint) of the files that checkpoint
#: replaces: removed once it is complete, or at the start of a run resumed from it.
PENDING_REMOVAL_KEY = 'mmcnv2_pending_removal'


def _is_local(backend) -> bool:
    if isinstance(backend, FileClient):
        backend = backend.client
    return isinstance(backend, LocalBackend)


class _DeferredRemoval:
    """A file backend whose ``remove``/``rmtree`` only note the path for later."""

    def __init__(self, backend, note):
        self._backend = backend
        self._note = note

    def remove(self, path):
        self._note(path)

    rmtree = remove

    def __getattr__(self, name):
        return getattr(self._backend, name)


@register('HOOKS')
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` that never loses the last complete checkpoint.

    mmengine 0.10's hook removes the oldest checkpoint (``max_keep_ckpts``) or
    the previous best one *before* it writes the new one, writes the new one
    in place, and rewrites ``last_checkpoint`` (what ``--resume`` reads) in
    place: a process killed in between leaves a partial file, or a
    ``last_checkpoint`` naming a removed one, and the run cannot resume. This
    hook takes the same arguments and keeps this order instead:

    1. the checkpoint is written to ``.<name>.incomplete`` in the same folder,
       flushed to disk and renamed into place in one step;
    2. ``last_checkpoint`` is replaced the same way;
    3. only then are the checkpoints it supersedes removed (the oldest beyond
       ``max_keep_ckpts``, the previous best of ``save_best``).

    Each checkpoint records the files still to remove, so a run killed before
    step 3 and resumed removes them when it starts, together with stale
    ``.incomplete`` files (which no checkpoint pattern of mmengine or mmdet
    matches). Killed at any moment, a run leaves ``last_checkpoint`` naming a
    complete checkpoint (or no ``last_checkpoint`` before the first one), and
    ``--resume`` continues from it. With a non-local storage backend
    (``backend_args``) there is no rename: checkpoints are written in place,
    but still removed only after their successor is complete.

    mmcnv2's ``tools/train.py`` uses this hook for a config whose
    ``default_hooks.checkpoint`` is a plain ``CheckpointHook``.

    Example:
        >>> default_hooks = dict(checkpoint=dict(
        ...     type='AtomicCheckpointHook', interval=1, max_keep_ckpts=1))
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pending: List[str] = []  # superseded files, removed once their successor is complete
        self._writing = False
        self._local = False  # whether the checkpoints are files that can be renamed

    def before_train(self, runner) -> None:
        super().before_train(runner)
        self._local = _is_local(self.file_backend)
        self._pending = list(runner.message_hub.get_info(PENDING_REMOVAL_KEY) or [])
        if is_main_process() and self._local:
            for folder in {self.out_dir, runner.work_dir}:
                if osp.isdir(folder):
                    for name in os.listdir(folder):
                        if is_temporary(name):
                            os.remove(osp.join(folder, name))
        # a resumed run finishes the removals its checkpoint was written before
        self._remove_pending(runner)

    # ------------------------------------------------------------- internals
    def _note_removal(self, runner, path: str):
        self._pending.append(str(path))
        runner.message_hub.update_info(PENDING_REMOVAL_KEY, list(self._pending))

    def _live_paths(self, runner) -> set:
        # the last checkpoint (also the one a run resumed from) and the best ones
        live = {self.last_ckpt, runner.message_hub.get_info('last_ckpt')}
        live.add(getattr(self, 'best_ckpt_path', None))
        live.update(getattr(self, 'best_ckpt_path_dict', {}).values())
        if self.max_keep_ckpts > 0:
            live.update(self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(s))
                        for s in self.keep_ckpt_ids)
        return live

    def _remove_pending(self, runner):
        if is_main_process():
            live = self._live_paths(runner)
            for path in self._pending:
                if path in live:
                    continue
                if self.file_backend.isfile(path):
                    self.file_backend.remove(path)
                elif self.file_backend.isdir(path):  # deepspeed saves folders
                    self.file_backend.rmtree(path)
        self._pending.clear()
        runner.message_hub.update_info(PENDING_REMOVAL_KEY, [])

    def _save_through_temporary(self, save, out_dir, filename, *args, **kwargs):
        """``runner.save_checkpoint`` writing ``out_dir/filename`` via a temporary file."""
        if not (is_main_process() and self._local):
            return save(out_dir, filename, *args, **kwargs)
        with atomic_output(self.file_backend.join_path(out_dir, filename)) as tmp:
            save(out_dir, osp.basename(tmp), *args, **kwargs)

    @contextlib.contextmanager
    def _durable_writes(self, runner):
        """Within: the runner's checkpoints are written through temporary files
        and the hook's removals wait in the pending list. Re-entrant."""
        if self._writing:
            yield
            return
        had_own = 'save_checkpoint' in vars(runner)
        save, backend = runner.save_checkpoint, self.file_backend
        runner.save_checkpoint = functools.partial(self._save_through_temporary, save)
        self.file_backend = _DeferredRemoval(backend, functools.partial(self._note_removal, runner))
        self._writing = True
        try:
            yield
        finally:
            self._writing = False
            self.file_backend = backend
            if had_own:
                runner.save_checkpoint = save
            else:
                del runner.save_checkpoint

    def _save_checkpoint_with_step(self, runner, step, meta):
        with self._durable_writes(runner):
            if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                                and self.keep_ckpt_ids[-1] == step):
                if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                    old = self.keep_ckpt_ids.popleft()
                    self._note_removal(
                        runner, self.file_backend.join_path(self.out_dir,
                                                            self.filename_tmpl.format(old)))
                self.keep_ckpt_ids.append(step)
                runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
            filename = self.filename_tmpl.format(step)
            self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
            runner.message_hub.update_info('last_ckpt', self.last_ckpt)
            runner.save_checkpoint(
                self.out_dir, filename, self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler, meta=meta,
                by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        if is_main_process():
            write_text_atomically(self.last_ckpt, osp.join(runner.work_dir, 'last_checkpoint'))
        if not self._writing:  # else called by _save_best_checkpoint, which removes them
            self._remove_pending(runner)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        # mmengine removes the previous best checkpoint and writes the new one
        # (then re-saves the last checkpoint) through self.file_backend and
        # runner.save_checkpoint: within _durable_writes the removal waits
        # until the new checkpoints are complete.
        if not self.save_best:
            return
        with self._durable_writes(runner):
            super()._save_best_checkpoint(runner, metrics)
        self._remove_pending(runner)


def use_atomic_checkpoint_hook(cfg):
    """Make a config's plain ``CheckpointHook`` an :class:`AtomicCheckpointHook` (in place).

    Other checkpoint hooks (subclasses of users' own) are left as they are.

    Args:
        cfg (Config | dict): A training config.

    Returns:
        The same ``cfg``.

    Example:
        >>> cfg = dict(default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2)))
        >>> use_atomic_checkpoint_hook(cfg)['default_hooks']['checkpoint']
        {'type': 'AtomicCheckpointHook', 'interval': 2}
    """
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    if hook is not None and hook.get('type') in ('CheckpointHook', 'mmengine.CheckpointHook',
                                                 CheckpointHook):
        hook['type'] = 'AtomicCheckpointHook'
    return cfg
