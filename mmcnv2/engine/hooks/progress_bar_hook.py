"""Progress bars with ETA for training, validation and testing."""
import sys
from contextlib import ExitStack
from typing import IO, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from ...registry import register


@register('HOOKS')
class ProgressBarHook(Hook):
    """Show a progress bar with ETA over the training iterations and over each
    validation / test epoch, with the runner's log lines printed above it.

    mmengine's ``LoggerHook`` prints an ETA every ``interval`` iterations; this
    hook adds a live bar (`tqdm <https://tqdm.github.io>`_) between those lines:
    iterations done, rate, elapsed time, ETA and the last loss. While a bar is
    open, the console handler of the runner's logger writes through
    ``tqdm.write`` (the bar is cleared, the line printed, the bar redrawn), so
    bars and log lines never share a line; log files are untouched. A bar
    closes when its loop has run its last iteration, before the metrics are
    computed and printed. Only the main process draws.

    Args:
        enabled (bool, optional): Draw the bars. ``None`` (default) draws them
            only when ``file`` is a terminal, so logs written to a file or a
            pipe stay free of carriage returns.
        file (IO, optional): Where to draw; defaults to ``sys.stderr`` (at the
            time the bars open).
        mininterval (float): Minimum seconds between two redraws. Defaults to
            0.5.

    Example:
        >>> default_hooks = dict(progress=dict(type='ProgressBarHook'))
    """

    priority = 'VERY_LOW'

    def __init__(self, enabled: Optional[bool] = None, file: Optional[IO] = None,
                 mininterval: float = 0.5):
        if enabled not in (None, True, False):
            raise ValueError(f'enabled must be None, True or False, got {enabled!r}')
        if isinstance(mininterval, bool) or not isinstance(mininterval, (int, float)) \
                or mininterval < 0:
            raise ValueError(f'mininterval must be a number >= 0, got {mininterval!r}')
        self.enabled = enabled
        self.file = file
        self.mininterval = float(mininterval)
        self._bars = {}
        self._redirects = {}

    # ---------------------------------------------------------------- helpers
    def _stream(self):
        return self.file if self.file is not None else sys.stderr

    def _draws(self) -> bool:
        if not is_main_process():
            return False
        if self.enabled is None:
            isatty = getattr(self._stream(), 'isatty', None)
            return bool(isatty and isatty())
        return self.enabled

    def _open(self, runner, phase: str, total: int, initial: int = 0):
        """Open the bar of ``phase`` and route the console log lines around it."""
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        self._close(phase)
        if not self._draws() or total <= initial:
            return
        logger, stack = runner.logger, ExitStack()
        before = list(logger.handlers)
        stack.enter_context(logging_redirect_tqdm(loggers=[logger]))
        replaced = [h for h in before if h not in logger.handlers]
        if replaced:  # tqdm's handler takes the console handler's place but not its level
            for new in (h for h in logger.handlers if h not in before):
                new.setLevel(replaced[0].level)
            self._redirects[phase] = stack
        else:  # no console handler (e.g. output captured): nothing to route, add nothing
            stack.close()
        self._bars[phase] = tqdm(total=total, initial=initial, desc=phase, unit='it',
                                 file=self._stream(), mininterval=self.mininterval,
                                 dynamic_ncols=True, leave=phase == 'train')

    def _advance(self, phase: str, loss=None):
        bar = self._bars.get(phase)
        if bar is None:
            return
        if loss is not None:  # the training loss still holds its graph: read it detached
            loss = loss.detach() if hasattr(loss, 'detach') else loss
            bar.set_postfix(loss=f'{float(loss):.4f}', refresh=False)
        bar.update(1)
        if bar.n >= bar.total:
            self._close(phase)

    def _close(self, phase: str):
        bar = self._bars.pop(phase, None)
        if bar is not None:
            bar.close()
        stack = self._redirects.pop(phase, None)
        if stack is not None:
            stack.close()

    # ------------------------------------------------------------------ hooks
    def before_train(self, runner):
        loop = runner.train_loop
        self._open(runner, 'train', loop.max_iters, loop.iter)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        loss = outputs.get('loss') if isinstance(outputs, dict) else None
        self._advance('train', loss)

    def after_train(self, runner):
        self._close('train')

    def before_val_epoch(self, runner):
        self._open(runner, 'val', len(runner.val_dataloader))

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._advance('val')

    def after_val_epoch(self, runner, metrics=None):
        self._close('val')

    def before_test_epoch(self, runner):
        self._open(runner, 'test', len(runner.test_dataloader))

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._advance('test')

    def after_test_epoch(self, runner, metrics=None):
        self._close('test')
