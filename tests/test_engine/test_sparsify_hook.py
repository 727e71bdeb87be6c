import glob
import os.path as osp
import shutil
from types import SimpleNamespace

import pytest
import torch

from mmcnv2.models.layers import LearnedGroupConv, stage_at
from tests.runner_utils import assert_state_equal, final_state, run, tiny_cfg

LGC_F, SFR_F = 4, 8


def check_fully_sparse(model):
    from mmcnv2.models.deploy import sparse_layers
    layers = sparse_layers(model)
    assert layers
    for name, m in layers:
        factor = LGC_F if isinstance(m, LearnedGroupConv) else SFR_F
        assert int(m.stage) == factor - 1, name
        assert m.density == pytest.approx(1 / factor, abs=0), name
        keep = m.group_keep()
        assert (keep.sum(1) == keep.shape[1] // factor).all(), name


# 252 iterations: a long schedule whose stage boundaries i / N * 2 (F - 1) fall exactly on
# integers for both factors (2 (F - 1) = 6 and 14 divide 252), where rounding would show
@pytest.mark.parametrize('iters', [1, 3, 7, 252])
def test_iteration_loop_ends_exactly_sparse(tmp_path, iters):
    kwargs = dict(images=16, batch=2) if iters > 100 else {}
    runner, rec = run(tiny_cfg(tmp_path, iters=iters, checkpoint_interval=10**6, **kwargs))
    check_fully_sparse(runner.model)
    # the stage after every iteration is the paper's: floor(2 (i / N) (F - 1)), capped
    for i, stages in enumerate(rec.stages, start=1):
        for name, stage in stages.items():
            factor = LGC_F if name.endswith('conv1') else SFR_F
            assert stage == stage_at(i / iters, factor), (i, name)


@pytest.mark.parametrize('iters_per_epoch,epochs,batch', [(1, 1, 8), (3, 1, 8), (7, 1, 8),
                                                          (4, 2, 8), (7, 36, 1)])
def test_epoch_loop_ends_exactly_sparse(tmp_path, iters_per_epoch, epochs, batch):
    runner, rec = run(tiny_cfg(tmp_path, epochs=epochs, images=batch * iters_per_epoch,
                               batch=batch, checkpoint_interval=10**6))
    total = iters_per_epoch * epochs
    assert len(rec.stages) == total
    check_fully_sparse(runner.model)
    for i, stages in enumerate(rec.stages, start=1):
        for name, stage in stages.items():
            factor = LGC_F if name.endswith('conv1') else SFR_F
            assert stage == stage_at(i / total, factor)


def test_end_progress_moves_the_end_of_sparsification(tmp_path):
    _, rec = run(tiny_cfg(tmp_path, iters=20, checkpoint_interval=10**6,
                          custom_hooks=[dict(type='SparsifyHook', end_progress=0.25)]))
    # fully sparse after 5 of 20 iterations, not before
    assert all(s == (LGC_F - 1 if n.endswith('conv1') else SFR_F - 1)
               for n, s in rec.stages[4].items())
    assert any(s < SFR_F - 1 for n, s in rec.stages[3].items())


@pytest.mark.parametrize('stop', [2, 5, 9])
def test_resume_equals_uninterrupted_run_bit_for_bit(tmp_path, stop):
    ref, _ = run(tiny_cfg(tmp_path / 'ref', iters=12), record=False)
    ref_state = final_state(ref)
    resumed_dir = tmp_path / 'resumed'
    resumed_dir.mkdir()
    shutil.copy(tmp_path / 'ref' / f'iter_{stop}.pth', resumed_dir / f'iter_{stop}.pth')
    cfg = tiny_cfg(resumed_dir, iters=12, resume=True,
                   load_from=str(resumed_dir / f'iter_{stop}.pth'))
    resumed, rec = run(cfg)
    assert len(rec.stages) == 12 - stop
    assert_state_equal(final_state(resumed), ref_state)


def test_epoch_resume_equals_uninterrupted_run(tmp_path):
    ref, _ = run(tiny_cfg(tmp_path / 'ref', epochs=3, images=24), record=False)
    cfg = tiny_cfg(tmp_path / 'resumed', epochs=3, images=24, resume=True,
                   load_from=str(tmp_path / 'ref' / 'epoch_1.pth'))
    resumed, _ = run(cfg, record=False)
    assert_state_equal(final_state(resumed), final_state(ref))


def test_load_from_mid_schedule_continues_from_its_stage(tmp_path):
    run(tiny_cfg(tmp_path / 'first', iters=12), record=False)
    ckpt = torch.load(tmp_path / 'first' / 'iter_2.pth', weights_only=True)
    loaded_stages = {k: int(v) for k, v in ckpt['state_dict'].items() if k.endswith('.stage')}
    assert max(loaded_stages.values()) > 0
    runner, rec = run(tiny_cfg(tmp_path / 'second', iters=12,
                               load_from=str(tmp_path / 'first' / 'iter_2.pth')))
    # no layer goes back below the stage it was loaded at, and the run ends fully sparse
    for stages in rec.stages:
        for name, stage in stages.items():
            assert stage >= loaded_stages[name + '.stage']
    check_fully_sparse(runner.model)


def test_ema_model_shares_masks_and_deploy_checkpoint_is_from_ema(tmp_path):
    from mmengine.hooks import EMAHook

    from mmcnv2.models.deploy import sparse_layers
    hooks = [dict(type='SparsifyHook', convert_at_end=True),
             dict(type='EMAHook', momentum=0.2)]
    runner, rec = run(tiny_cfg(tmp_path, iters=10, custom_hooks=hooks))
    assert len(rec.ema_masks) == len(rec.masks) == 10
    for live, ema in zip(rec.masks, rec.ema_masks):
        assert set(live) == set(ema)
        for k in live:
            assert torch.equal(live[k], ema[k])
    ema_model = [h for h in runner.hooks if isinstance(h, EMAHook)][0].ema_model.module
    deploy_ckpt = glob.glob(osp.join(str(tmp_path), '*_deploy.pth'))
    assert deploy_ckpt == [osp.join(str(tmp_path), 'iter_10_deploy.pth')]
    state = torch.load(deploy_ckpt[0], weights_only=True)
    assert state['meta']['mmcnv2']['from_ema'] is True

    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    cfg = tiny_cfg(tmp_path, iters=10)
    cfg.model.backbone.deploy = True
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        deployed = MODELS.build(cfg.model)
    deployed.load_state_dict(state['state_dict'], strict=True)
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        expected = ema_model.eval()(x, mode='tensor')
        torch.testing.assert_close(deployed.eval()(x, mode='tensor'), expected,
                                   rtol=1e-5, atol=1e-6)
    live = runner.model
    assert not all(torch.equal(a, b) for a, b in zip(live.parameters(), ema_model.parameters()))
    assert all(m.deploy is False for _, m in sparse_layers(live))


def _fake_runner(model, max_iters=10, hooks=()):
    import logging
    return SimpleNamespace(model=model, max_iters=max_iters, iter=0, hooks=list(hooks),
                           logger=logging.getLogger('test'))


def test_model_without_sparse_layers_is_an_error():
    from mmcnv2.engine import SparsifyHook
    with pytest.raises(RuntimeError, match='no LGC/SFR layers'):
        SparsifyHook().before_train(_fake_runner(torch.nn.Linear(2, 2)))


def test_model_in_deploy_form_is_an_error():
    from mmcnv2.engine import SparsifyHook
    from mmcnv2.models import CondenseNetV2
    with pytest.raises(RuntimeError, match='already in deploy form'):
        SparsifyHook().before_train(_fake_runner(CondenseNetV2('a', deploy=True)))


def test_short_schedule_warns_and_long_one_does_not(caplog):
    from mmcnv2.engine import SparsifyHook
    from mmcnv2.models import CondenseNetV2
    model = CondenseNetV2('a')
    with caplog.at_level('WARNING', logger='test'):
        SparsifyHook().before_train(_fake_runner(model, max_iters=10))
    assert 'schedule is short' in caplog.text
    caplog.clear()
    with caplog.at_level('WARNING', logger='test'):
        SparsifyHook().before_train(_fake_runner(CondenseNetV2('a'), max_iters=1000))
    assert 'schedule is short' not in caplog.text


@pytest.mark.parametrize('bad', [0, -0.5, 1.5, 'half', True])
def test_bad_end_progress(bad):
    from mmcnv2.engine import SparsifyHook
    with pytest.raises(ValueError, match=r'end_progress must be a number in \(0, 1\]'):
        SparsifyHook(end_progress=bad)


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmdet'])
def test_hook_builds_from_both_scopes(scope):
    import importlib

    from mmengine.registry import DefaultScope

    from mmcnv2.engine import SparsifyHook
    hooks = importlib.import_module(f'{scope}.registry').HOOKS
    with DefaultScope.overwrite_default_scope(scope):
        assert isinstance(hooks.build(dict(type='SparsifyHook')), SparsifyHook)


def test_ema_hook_running_first_still_gets_the_masks_of_its_iteration(tmp_path):
    """mmengine's EMAHook copies the buffers (the masks) after every iteration itself; with
    the default priorities it runs after SparsifyHook, so it copies masks that are already
    right. Here it runs first (same priority, listed first, as a user may write it): only
    SparsifyHook's own sync gives the EMA model the masks of the iteration it dropped
    stages in, and the deploy checkpoint written from the EMA weights at the end of a
    schedule whose last stage drops in its last iteration (end_progress=1)."""
    hooks = [dict(type='EMAHook', momentum=0.2, priority='ABOVE_NORMAL'),
             dict(type='SparsifyHook', end_progress=1.0, convert_at_end=True)]
    runner, rec = run(tiny_cfg(tmp_path, iters=6, custom_hooks=hooks,
                               checkpoint_interval=10**6))  # the last checkpoint only
    assert [type(h).__name__ for h in runner.hooks].index('EMAHook') < \
        [type(h).__name__ for h in runner.hooks].index('SparsifyHook')
    drops = [i for i in range(1, 6) if any(not torch.equal(rec.masks[i][k], rec.masks[i - 1][k])
                                           for k in rec.masks[i])]
    assert drops and drops[-1] == 5  # stages drop in the last iteration too
    for live, ema in zip(rec.masks, rec.ema_masks):
        for k in live:
            assert torch.equal(live[k], ema[k]), k
    check_fully_sparse(runner.model)
    assert glob.glob(osp.join(str(tmp_path), '*_deploy.pth'))


@pytest.mark.parametrize('backbone', [None, dict(type='SFRShuffleNetV2', arch='0.5x')],
                         ids=['CondenseNetV2', 'SFRShuffleNetV2'])
def test_logged_densities_and_live_flops_follow_the_masks(tmp_path, backbone):
    """The logged train/density_lgc, train/density_sfr and train/live_mflops after every
    iteration of a real schedule, against references computed here from the masks: live /
    total connections per kind (SFR-ShuffleNetV2's SFRs have factors 24, 48 and 96, so the
    layers' densities differ mid-schedule), and, for the FLOPs, the change between
    iterations equals the dropped connections times kernel area times map size of their
    layer; at the end the live FLOPs are those of the condensed model."""
    from mmcnv2.analysis import paper_complexity
    from mmcnv2.models import switch_model_to_deploy
    from mmcnv2.models.deploy import sparse_layers

    cfg = tiny_cfg(tmp_path, iters=8, images=16, batch=4, checkpoint_interval=10**6)
    if backbone is not None:
        cfg.model.backbone = backbone
        cfg.model.head.in_channels = 1024
        cfg.train_dataloader.dataset.size = 32
    size = cfg.train_dataloader.dataset.size
    runner, rec = run(cfg)
    model = runner.model
    # map size and kernel area of every sparse layer, measured on an input of the data's size
    cost = {}

    def measure(module, args, out):
        cost[module] = out.shape[2] * out.shape[3] * module.kernel_size**2

    handles = [m.register_forward_hook(measure) for _, m in sparse_layers(model)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size), mode='tensor')
    for h in handles:
        h.remove()
    cost = {name: cost[m] for name, m in sparse_layers(model)}
    hub = runner.message_hub
    kinds = {'density_lgc': 'conv1', 'density_sfr': 'sfr'}
    kinds = {k: v for k, v in kinds.items() if any(n.endswith(v) for n in rec.masks[0])}
    logged = {kind: hub.get_scalar(f'train/{kind}').data[0].tolist()
              for kind in [*kinds, 'live_mflops']}
    assert all(len(v) == 8 for v in logged.values())
    for i, masks in enumerate(rec.masks):
        for kind, suffix in kinds.items():
            group = [m for name, m in masks.items() if name.endswith(suffix)]
            live = sum(int(m.sum()) for m in group) / sum(m.numel() for m in group)
            assert logged[kind][i] == pytest.approx(live, rel=1e-6), (i, kind)
    if backbone is not None:  # the schedule is such that the layers' densities differ
        assert len({float(m.float().mean()) for m in rec.masks[2].values()}) > 1
    changes = 0
    for i in range(1, 8):
        dropped = sum(int((rec.masks[i - 1][name] & ~m).sum()) * cost[name]
                      for name, m in rec.masks[i].items())
        changes += dropped > 0
        assert logged['live_mflops'][i - 1] - logged['live_mflops'][i] == pytest.approx(
            dropped / 1e6, rel=1e-6, abs=1e-9), i
    assert changes >= 3
    switch_model_to_deploy(model)
    flops, _ = paper_complexity(model, (3, size, size), lambda m, x: m(x, mode='tensor'))
    assert logged['live_mflops'][-1] == pytest.approx(flops / 1e6, rel=1e-9)
