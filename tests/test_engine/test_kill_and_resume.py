"""A training process killed at any moment of checkpointing resumes, and ends where an
uninterrupted run ends; what ``--resume`` guarantees with random augmentation."""
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.runner_utils import assert_state_equal, final_state, run, tiny_cfg

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PAUSED = osp.join(ROOT, 'tests', 'train_paused.py')
EPOCHS = 3


def kill_cfg(work_dir):
    """2 iterations an epoch, a checkpoint every epoch, only the newest kept (as the demos)."""
    cfg = tiny_cfg(work_dir, epochs=EPOCHS, images=16, batch=8)
    cfg.default_hooks.checkpoint.max_keep_ckpts = 1
    return cfg


def train_until_killed(config, work_dir, point, n, resume):
    """tools/train.py paused at the n-th ``point`` of checkpointing, then SIGKILLed."""
    marker = osp.join(osp.dirname(work_dir), 'paused')
    if osp.exists(marker):
        os.remove(marker)
    log = open(osp.join(osp.dirname(work_dir), f'{point}.log'), 'w')
    cmd = [sys.executable, PAUSED, point, str(n), marker, 'tools/train.py', config,
           '--work-dir', work_dir] + (['--resume'] if resume else [])
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not osp.exists(marker):
            assert proc.poll() is None, \
                f'{point} {n}: the run ended ({proc.returncode}) before pausing:\n' + \
                open(log.name).read()[-3000:]
            assert time.monotonic() < deadline, f'{point} {n}: never paused'
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        log.close()
    assert proc.returncode == -signal.SIGKILL


def pointer(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return osp.basename(f.read().strip())


def loads(path):
    return torch.load(path, map_location='cpu', weights_only=True)['meta']['epoch']


def test_killed_at_every_step_of_checkpointing_resumes_to_the_same_end(tmp_path):
    ref_runner, _ = run(kill_cfg(tmp_path / 'ref'), record=False)
    reference = final_state(ref_runner)

    work_dir = str(tmp_path / 'run' / 'work')
    os.makedirs(work_dir)
    config = str(tmp_path / 'run' / 'tiny.py')
    kill_cfg(work_dir).dump(config)  # names plain CheckpointHook: tools/train.py upgrades it

    def files():
        return sorted(os.listdir(work_dir))

    # 1. killed while epoch_2.pth is half written: epoch_1 is intact and named
    train_until_killed(config, work_dir, 'write', 2, resume=False)
    assert pointer(work_dir) == 'epoch_1.pth' and loads(osp.join(work_dir, 'epoch_1.pth')) == 1
    assert 'epoch_2.pth' not in files() and '.epoch_2.pth.incomplete' in files()

    # 2. resumed, killed with epoch_2 complete under its temporary name
    train_until_killed(config, work_dir, 'rename', 1, resume=True)
    assert pointer(work_dir) == 'epoch_1.pth' and 'epoch_2.pth' not in files()
    assert loads(osp.join(work_dir, '.epoch_2.pth.incomplete')) == 2

    # 3. resumed, killed with epoch_2.pth in place but last_checkpoint not yet updated
    train_until_killed(config, work_dir, 'pointer', 1, resume=True)
    assert pointer(work_dir) == 'epoch_1.pth' and loads(osp.join(work_dir, 'epoch_2.pth')) == 2
    assert '.epoch_2.pth.incomplete' not in files()

    # 4. resumed (from epoch_1 again), killed before the superseded epoch_1 is removed
    train_until_killed(config, work_dir, 'remove', 1, resume=True)
    assert pointer(work_dir) == 'epoch_2.pth'
    assert loads(osp.join(work_dir, 'epoch_1.pth')) == 1
    assert loads(osp.join(work_dir, 'epoch_2.pth')) == 2

    # 5. resumed to the end: the left-over epoch_1 is removed, only the newest is kept
    proc = subprocess.run([sys.executable, 'tools/train.py', config, '--work-dir', work_dir,
                           '--resume'], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert pointer(work_dir) == f'epoch_{EPOCHS}.pth'
    assert [f for f in files() if '.pth' in f] == [f'epoch_{EPOCHS}.pth']
    final = torch.load(osp.join(work_dir, f'epoch_{EPOCHS}.pth'), weights_only=True)
    assert_state_equal(final['state_dict'], reference)


@pytest.mark.parametrize('fail_at', [4, 5])
def test_failed_write_keeps_the_previous_checkpoint_and_best(tmp_path, monkeypatch, fail_at):
    """In process: a write that fails half-way (disk full, ...) removes nothing, for the
    periodic checkpoint (max_keep_ckpts=1, fail_at=4) and the best one (save_best, 5)."""
    from mmengine.runner import Runner
    cfg = kill_cfg(tmp_path)
    cfg.default_hooks.checkpoint = dict(type='AtomicCheckpointHook', interval=1,
                                        max_keep_ckpts=1, save_best='accuracy/top1',
                                        rule='greater')
    cfg.val_dataloader = dict(batch_size=16, num_workers=0,
                              dataset=dict(type='SklearnDigits', split='test', size=8,
                                           indices=16, pipeline=[dict(type='PackInputs')]),
                              sampler=dict(type='DefaultSampler', shuffle=False))
    cfg.val_evaluator = dict(type='Accuracy', topk=(1, ))
    cfg.val_cfg = dict()
    cfg.train_cfg.val_interval = 1
    # the score improves every epoch, so every epoch writes a new best checkpoint
    scores = iter([10.0, 20.0, 30.0])
    monkeypatch.setattr('mmpretrain.evaluation.Accuracy.compute_metrics',
                        lambda self, results: {'top1': next(scores)})
    save, calls = Runner.save_checkpoint, []

    def failing_save(self, out_dir, filename, *args, **kwargs):
        calls.append(filename)
        if len(calls) == fail_at:
            with open(osp.join(out_dir, filename), 'wb') as f:
                f.write(b'PK\x03\x04 half a checkpoint')
            raise OSError(28, 'No space left on device')
        return save(self, out_dir, filename, *args, **kwargs)

    monkeypatch.setattr(Runner, 'save_checkpoint', failing_save)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(OSError, match='No space left'):
        runner.train()
    # per epoch: periodic checkpoint, best checkpoint, periodic again (recording the best)
    assert calls == ['.epoch_1.pth.incomplete', '.best_accuracy_top1_epoch_1.pth.incomplete',
                     '.epoch_1.pth.incomplete', '.epoch_2.pth.incomplete',
                     '.best_accuracy_top1_epoch_2.pth.incomplete'][:fail_at]
    last = 'epoch_1.pth' if fail_at == 4 else 'epoch_2.pth'
    on_disk = sorted(os.listdir(tmp_path))
    assert [f for f in on_disk if '.pth' in f] == ['best_accuracy_top1_epoch_1.pth', last]
    assert pointer(tmp_path) == last
    assert loads(tmp_path / last) == int(last[6])
    assert loads(tmp_path / 'best_accuracy_top1_epoch_1.pth') == 1


@pytest.mark.parametrize('augment', [False, True])
def test_what_resume_guarantees(tmp_path, augment):
    """README's statement: masks, stages, weights, optimizer and data order are restored; the
    random draws of data augmentation are not (mmengine re-seeds at resume), so with a random
    crop the resumed run follows the same pruning schedule but not the same weights."""
    pipeline = ([dict(type='RandomCrop', crop_size=8, padding=2)] if augment else []) + \
        [dict(type='PackInputs')]

    def cfg(work_dir, **extra):
        c = tiny_cfg(work_dir, epochs=4, images=16, batch=8, **extra)
        c.train_dataloader.dataset.pipeline = pipeline
        return c

    ref, ref_rec = run(cfg(tmp_path / 'ref'))
    resumed_dir = tmp_path / 'resumed'
    resumed_dir.mkdir()
    shutil.copy(tmp_path / 'ref' / 'epoch_1.pth', resumed_dir / 'epoch_1.pth')
    resumed, rec = run(cfg(resumed_dir, resume=True, load_from=str(resumed_dir / 'epoch_1.pth')))
    # the pruning schedule (the hook's state: each layer's stage) continues exactly
    assert rec.stages == ref_rec.stages[2:]
    assert any(s != ref_rec.stages[1] for s in rec.stages)  # pruning went on after the resume
    a, b = final_state(resumed), final_state(ref)
    if not augment:
        assert_state_equal(a, b)
    else:
        differ = [k for k in a if not torch.equal(a[k], b[k])]
        assert any(k.endswith('weight') for k in differ)


def test_every_training_config_saves_atomically():
    """Our configs get AtomicCheckpointHook from our runtime bases (or set it, the demos):
    one config per base is loaded, and no other config names mmpretrain's or mmdet's runtime."""
    import glob
    import re

    from mmengine.config import Config
    bases = ('configs/_base_/default_runtime.py', 'configs/_base_/detection/coco_1x.py')
    for config in ('configs/imagenet/cnv2_a.py', 'configs/cifar/cnv2_110_c10.py',
                   'configs/retinanet_cnv2_c.py', 'configs/demo/cnv2_digits.py',
                   'configs/demo/retinanet_cnv2_trees.py'):
        hook = Config.fromfile(osp.join(ROOT, config)).default_hooks.checkpoint
        assert hook.type == 'AtomicCheckpointHook', config
    for path in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True):
        name = osp.relpath(path, ROOT)
        text = open(path).read()
        assert not re.search(r"""type=['"](mmengine\.)?CheckpointHook""", text), name
        if name not in bases and not name.startswith('configs/demo/'):
            assert '::_base_/default_runtime.py' not in text, name
