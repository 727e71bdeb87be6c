"""End-to-end: tools/train.py -> checkpoint -> tools/test.py / resume / deploy check."""
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmcnv2.apis.deploy import compare_forms

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs/demo/cnv2_digits.py')
SHORT = ['train_cfg.max_epochs=2', 'train_cfg.val_interval=2', 'param_scheduler.0.T_max=2',
         'param_scheduler.0.end=2', 'default_hooks.checkpoint.interval=1',
         'default_hooks.checkpoint.max_keep_ckpts=3']


def run(*args):
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('demo'))
    log = run('tools/train.py', CONFIG, '--work-dir', work_dir, '--cfg-options', *SHORT)
    return work_dir, log


def test_train_sparsifies_fully_and_saves_masks(trained):
    work_dir, log = trained
    assert 'SparsifyHook' in log
    ckpt = torch.load(osp.join(work_dir, 'epoch_2.pth'), weights_only=True)
    stages = {k: int(v) for k, v in ckpt['state_dict'].items() if k.endswith('.stage')}
    assert stages and set(stages.values()) == {3}
    for k, v in ckpt['state_dict'].items():
        if k.endswith('.mask'):
            assert v.float().mean().item() == pytest.approx(0.25)
    # the epoch-1 checkpoint was written after the hook ran on its last iteration:
    # 45 of 90 iterations done -> the end of the sparsification window (0.5)
    mid = torch.load(osp.join(work_dir, 'epoch_1.pth'), weights_only=True)
    assert {int(v) for k, v in mid['state_dict'].items() if k.endswith('.stage')} == {3}


def test_test_tool_and_resume(trained):
    work_dir, _ = trained
    out = run('tools/test.py', CONFIG, osp.join(work_dir, 'epoch_2.pth'), '--work-dir',
              osp.join(work_dir, 'test'))
    assert 'accuracy/top1' in out
    out = run('tools/train.py', CONFIG, '--work-dir', work_dir, '--resume', '--cfg-options',
              *[o.replace('max_epochs=2', 'max_epochs=3') for o in SHORT])
    assert 'resumed epoch: 2' in out.lower() or 'resumed epoch 2' in out.lower(), out[-2000:]
    assert osp.exists(osp.join(work_dir, 'epoch_3.pth'))


def test_deploy_form_gives_identical_metrics(trained, tmp_path):
    work_dir, _ = trained
    out = str(tmp_path / 'deploy.pth')
    r = compare_forms(CONFIG, osp.join(work_dir, 'epoch_2.pth'), out)
    assert r['training']['metrics'] == r['deploy']['metrics']
    assert r['deploy']['metrics']['accuracy/top1'] > 30  # 10 classes: chance is 10
    assert r['training']['paper_flops'] == pytest.approx(r['deploy']['paper_flops'])
    # class names travel with the deploy checkpoint (the inferencers label with them)
    src_meta = torch.load(osp.join(work_dir, 'epoch_2.pth'), weights_only=True)['meta']
    dst_meta = torch.load(out, weights_only=True)['meta']
    assert len(dst_meta['dataset_meta']['classes']) == 10
    assert dst_meta['dataset_meta'] == src_meta['dataset_meta']
    # the deploy checkpoint loads into the config with model.backbone.deploy=True
    log = run('tools/test.py', CONFIG, out, '--work-dir', str(tmp_path / 't'), '--cfg-options',
              'model.backbone.deploy=True')
    acc = r['deploy']['metrics']['accuracy/top1']
    assert f'accuracy/top1: {acc:.4f}' in log
