"""Demo schedules stretch as a whole (``tools/demo.py --epochs``, ``tools/compare.py``)."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmcnv2_tools.demo import schedule_options

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DET = osp.join(ROOT, 'configs/demo/retinanet_cnv2_trees.py')
CLS = osp.join(ROOT, 'configs/demo/cnv2_digits.py')


def test_schedule_stretches_epoch_schedulers_and_keeps_the_iteration_warmup():
    cfg = Config.fromfile(DET)
    old = cfg.train_cfg.max_epochs
    opts = schedule_options(DET, 2 * old)
    warmup, cosine = opts['param_scheduler']
    assert warmup == cfg.param_scheduler[0]  # by iteration: unchanged
    assert (cosine['begin'], cosine['end'], cosine['T_max']) == (0, 2 * old, 2 * old)
    assert opts['train_cfg.max_epochs'] == 2 * old
    assert opts['train_cfg.val_interval'] == 2 * old  # the config validates at the end only
    assert opts['default_hooks.checkpoint.interval'] == 2 * old
    merged = Config.fromfile(DET)
    merged.merge_from_dict(opts)
    assert merged.param_scheduler[1].T_max == 2 * old


def test_schedule_shrinks_intervals_but_keeps_them_at_least_one():
    opts = schedule_options(CLS, 1)  # 12 epochs, val and checkpoint every 4
    assert (opts['train_cfg.val_interval'], opts['default_hooks.checkpoint.interval']) == (1, 1)
    assert opts['param_scheduler'][0]['T_max'] == 1


@pytest.mark.parametrize('epochs', [0, -3, 2.5, True, '10'])
def test_schedule_rejects_bad_epochs(epochs):
    with pytest.raises(ValueError, match='epochs must be an int >= 1'):
        schedule_options(CLS, epochs)


def test_schedule_needs_an_epoch_based_config():
    cfg = Config(dict(train_cfg=dict(type='IterBasedTrainLoop', max_iters=100)))
    with pytest.raises(ValueError, match='needs an epoch-based config'):
        schedule_options(cfg, 5)
