"""Drive the learned sparsification of LGC / SFR layers from the training loop."""
from typing import List, Tuple

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ...models.layers import SparseConvBase


def find_sparse_layers(model) -> List[Tuple[str, SparseConvBase]]:
    """``(name, layer)`` of every LGC / SFR layer of ``model`` (unwrapped)."""
    if is_model_wrapper(model):
        model = model.module
    return [(n, m) for n, m in model.named_modules() if isinstance(m, SparseConvBase)]


class SparsifyHook(Hook):
    """Prune every LGC / SFR layer of the model on the paper's schedule.

    After each training iteration the hook moves every sparse layer to the
    stage of ``progress = finished iterations / max_iters`` (epoch- and
    iteration-based loops alike), so that a layer with factor ``F`` drops a
    ``1/F`` of its connections at ``progress = i * end_progress / (F - 1)``
    and is fully sparse at ``end_progress`` (0.5 in the paper). It runs at
    ``ABOVE_NORMAL`` priority, before the checkpoint hook, so a checkpoint
    carries the masks of its iteration.

    Args:
        end_progress (float): Fraction of training at which sparsification
            ends, in ``(0, 1]``. Defaults to 0.5.

    Example:
        >>> custom_hooks = [dict(type='SparsifyHook')]
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, end_progress: float = 0.5):
        if not isinstance(end_progress, (int, float)) or not 0 < end_progress <= 1:
            raise ValueError(f'end_progress must be a number in (0, 1], got {end_progress!r}')
        self.end_progress = float(end_progress)

    def _layers(self, runner):
        return find_sparse_layers(runner.model)

    def schedule_progress(self, runner, iteration: int) -> float:
        """The layers' ``progress`` argument after ``iteration`` finished iterations."""
        return 0.5 * iteration / (runner.max_iters * self.end_progress)

    def before_train(self, runner):
        layers = self._layers(runner)
        if not layers:
            raise RuntimeError('SparsifyHook: the model has no LGC/SFR layers to sparsify; '
                               'remove the hook or use a training-form sparse backbone')
        if all(m.deploy for _, m in layers):
            raise RuntimeError('SparsifyHook: every sparse layer is already in deploy form '
                               '(condensed); there is nothing to sparsify')
        max_stages = max(m.num_stages for _, m in layers if not m.deploy)
        end_iter = runner.max_iters * self.end_progress
        if end_iter < max_stages:
            runner.logger.warning(
                f'SparsifyHook: the schedule is short ({runner.max_iters} iterations) for '
                f'{max_stages} pruning stages ending at {self.end_progress:.0%} of training; '
                'several stages will be dropped in the same iteration')
        # Bring layers loaded mid-schedule (load_from / resume) to their stage.
        self._step(runner, runner.iter)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None):
        self._step(runner, runner.iter + 1)

    def _step(self, runner, iteration):
        progress = self.schedule_progress(runner, iteration)
        dropped = 0
        for _, m in self._layers(runner):
            if not m.deploy:
                dropped += m.sparsify(progress)
        if dropped:
            layers = [m for _, m in self._layers(runner)]
            density = sum(m.density for m in layers) / len(layers)
            runner.logger.info(f'SparsifyHook: iteration {iteration}, {dropped} layer stages '
                               f'dropped, mean density {density:.4f}')
