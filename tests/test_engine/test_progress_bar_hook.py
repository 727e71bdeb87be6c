"""ProgressBarHook: bars over training / validation / testing, log lines routed around them."""
import io
import re

import pytest
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmcnv2.engine.hooks import ProgressBarHook

from ..runner_utils import tiny_cfg


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True


class ConsoleProbe(Hook):
    """Records, after every training iteration, the levels and kinds of the
    logger's console handlers (tqdm's handler while a bar is open)."""

    priority = 'LOWEST'

    def __init__(self):
        self.seen = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.seen.append([(type(h).__name__, h.level) for h in runner.logger.handlers])


def _runner(tmp_path, *hooks):
    """A tiny classifier run (2 epochs of 4 iterations, 3 val/test batches) with ``hooks``."""
    cfg = tiny_cfg(tmp_path, epochs=2, images=32, batch=8, log_level='INFO')
    cfg.val_dataloader = dict(cfg.train_dataloader, sampler=dict(type='DefaultSampler',
                                                                 shuffle=False))
    cfg.val_dataloader['dataset'] = dict(cfg.train_dataloader['dataset'], indices=12)
    cfg.val_dataloader['batch_size'] = 4
    cfg.val_evaluator = dict(type='Accuracy')
    cfg.val_cfg = dict()
    cfg.train_cfg['val_interval'] = 2
    cfg.test_dataloader, cfg.test_evaluator, cfg.test_cfg = (cfg.val_dataloader,
                                                             cfg.val_evaluator, dict())
    runner = Runner.from_cfg(cfg)
    for hook in hooks:
        runner.register_hook(hook)
    return runner


def _bar_states(text):
    """(phase, done, total) of every redraw of a tqdm bar in ``text``."""
    return [(m[0], int(m[1]), int(m[2]))
            for m in re.findall(r'(train|val|test):\s+\d+%\S*\s*(\d+)/(\d+)', text)]


def test_bars_count_every_iteration_of_train_val_and_test(tmp_path):
    term = Terminal()
    runner = _runner(tmp_path, ProgressBarHook(file=term, mininterval=0))
    runner.train()
    runner.test()
    states = _bar_states(term.getvalue())
    # 32 images in batches of 8: 4 iterations per epoch, 2 epochs; 12 val images in 3 batches
    assert [s for s in states if s[0] == 'train'][-1] == ('train', 8, 8)
    assert max(s[1] for s in states if s[0] == 'train') == 8
    assert {s[2] for s in states if s[0] == 'val'} == {3}
    assert ('val', 3, 3) in states and ('test', 3, 3) in states
    assert 'loss=' in term.getvalue()  # the last loss is shown next to the training bar


def test_console_log_goes_through_the_bar_with_its_own_level_and_is_restored(tmp_path):
    probe = ConsoleProbe()
    runner = _runner(tmp_path, ProgressBarHook(file=Terminal(), mininterval=0), probe)
    before = [(type(h).__name__, h.level) for h in runner.logger.handlers]
    runner.train()
    console = [h for h in before if h[0] == 'StreamHandler']
    assert console == [('StreamHandler', 20)]  # mmengine's console handler, INFO
    # while the training bar is open, tqdm's handler replaces it, at the same level
    assert len(probe.seen) == 8
    for handlers in probe.seen[:-1]:
        assert ('StreamHandler', 20) not in handlers
        assert ('_TqdmLoggingHandler', 20) in handlers
    after = [(type(h).__name__, h.level) for h in runner.logger.handlers]
    assert after == before


def test_not_a_terminal_draws_nothing_by_default(tmp_path):
    pipe = io.StringIO()
    _runner(tmp_path, ProgressBarHook(file=pipe)).train()
    assert pipe.getvalue() == ''


@pytest.mark.parametrize('kwargs, message', [
    (dict(enabled='yes'), 'enabled must be None, True or False'),
    (dict(mininterval=-1), 'mininterval must be a number >= 0'),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ProgressBarHook(**kwargs)
