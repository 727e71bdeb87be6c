"""tools/convert.py on a trained EMA checkpoint, and mmpretrain's own train.py on our configs."""
import os.path as osp
import subprocess
import sys

import torch

import mmpretrain
from tests.runner_utils import run, tiny_cfg

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_convert_tool_matches_convert_at_end(tmp_path):
    hooks = [dict(type='SparsifyHook', convert_at_end=True), dict(type='EMAHook', momentum=0.2)]
    cfg = tiny_cfg(tmp_path / 'run', iters=6, custom_hooks=hooks)
    run(cfg, record=False)
    cfg.custom_imports = dict(imports=['mmcnv2'], allow_failed_imports=False)
    config = str(tmp_path / 'tiny.py')
    cfg.dump(config)
    out = str(tmp_path / 'converted.pth')
    proc = subprocess.run([sys.executable, 'tools/convert.py', config,
                           str(tmp_path / 'run' / 'iter_6.pth'), out],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours = torch.load(out, weights_only=True)
    hook = torch.load(tmp_path / 'run' / 'iter_6_deploy.pth', weights_only=True)
    assert ours['meta']['mmcnv2']['from_ema'] is True
    assert set(ours['state_dict']) == set(hook['state_dict'])
    for k, v in ours['state_dict'].items():
        assert torch.equal(v, hook['state_dict'][k]), k


def test_convert_refuses_unfinished_checkpoint(tmp_path):
    # a checkpoint written before the end of the schedule (iteration 1 of 2, with
    # sparsification ending at the last iteration)
    cfg = tiny_cfg(tmp_path / 'run', iters=2)
    cfg.custom_hooks = [dict(type='SparsifyHook', end_progress=1.0)]
    run(cfg, record=False)
    cfg.custom_imports = dict(imports=['mmcnv2'], allow_failed_imports=False)
    config = str(tmp_path / 'tiny.py')
    cfg.dump(config)
    proc = subprocess.run([sys.executable, 'tools/convert.py', config,
                           str(tmp_path / 'run' / 'iter_1.pth'), str(tmp_path / 'x.pth')],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0
    assert 'has not finished sparsifying' in proc.stderr or 'have not finished' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_mmpretrain_own_train_script_accepts_our_config(tmp_path):
    script = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools', 'train.py')
    assert osp.exists(script)
    proc = subprocess.run(
        [sys.executable, script, 'configs/demo/cnv2_digits.py', '--work-dir', str(tmp_path),
         '--cfg-options', 'train_cfg.max_epochs=1', 'train_dataloader.dataset.indices=64',
         'val_dataloader.dataset.indices=32', 'param_scheduler.0.T_max=1',
         'param_scheduler.0.end=1', 'train_cfg.val_interval=1'],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert osp.exists(tmp_path / 'epoch_1.pth')
