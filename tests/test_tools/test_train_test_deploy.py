"""End-to-end: tools/train.py -> checkpoint -> tools/test.py / resume / deploy check."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torchvision
from mmengine.config import Config
from mmengine.runner import Runner

from mmcnv2 import apis
from mmcnv2.apis.deploy import compare_forms
from mmcnv2.models.forms import CheckpointFormError, CheckpointMismatchError

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


@pytest.fixture(scope='module')
def deployed(trained, tmp_path_factory):
    work_dir, _ = trained
    out = str(tmp_path_factory.mktemp('deploy') / 'deploy.pth')
    return compare_forms(CONFIG, osp.join(work_dir, 'epoch_2.pth'), out), out


def test_deploy_form_gives_identical_metrics(trained, deployed):
    work_dir, _ = trained
    r, out = deployed
    assert r['training']['metrics'] == r['deploy']['metrics']
    assert r['deploy']['metrics']['accuracy/top1'] > 30  # 10 classes: chance is 10
    assert r['training']['paper_flops'] == pytest.approx(r['deploy']['paper_flops'])
    # class names travel with the deploy checkpoint (the inferencers label with them)
    src_meta = torch.load(osp.join(work_dir, 'epoch_2.pth'), weights_only=True)['meta']
    dst_meta = torch.load(out, weights_only=True)['meta']
    assert len(dst_meta['dataset_meta']['classes']) == 10
    assert dst_meta['dataset_meta'] == src_meta['dataset_meta']


def test_test_tool_builds_the_form_of_the_checkpoint(deployed, tmp_path):
    """A deploy checkpoint and no option: the deploy form's accuracy, not random weights'."""
    r, out = deployed
    acc = r['deploy']['metrics']['accuracy/top1']
    log = run('tools/test.py', CONFIG, out, '--work-dir', str(tmp_path / 't'))
    assert f'accuracy/top1: {acc:.4f}' in log
    # the option that says the same is accepted
    metrics = apis.test(CONFIG, out, str(tmp_path / 'u'), {'model.backbone.deploy': True})
    assert metrics['accuracy/top1'] == acc


def test_wrong_form_and_foreign_checkpoints_are_refused(trained, deployed, tmp_path):
    work_dir, _ = trained
    _, deploy_ckpt = deployed
    with pytest.raises(CheckpointFormError,
                       match='is in training form but model.backbone.deploy=True was given'):
        apis.test(CONFIG, osp.join(work_dir, 'epoch_2.pth'), str(tmp_path / 'a'),
             {'model.backbone.deploy': True})
    foreign = str(tmp_path / 'resnet18.pth')
    torch.save({'state_dict': torchvision.models.resnet18().state_dict()}, foreign)
    with pytest.raises(CheckpointMismatchError,
                       match=r'missing: backbone\.stem\.weight.*unexpected: conv1\.weight'):
        apis.test(CONFIG, foreign, str(tmp_path / 'b'))
    # mmengine's Runner on its own (mmpretrain's tools/test.py): the backbone refuses
    for ckpt, error, flag in ((deploy_ckpt, CheckpointFormError, 'model.backbone.deploy=True'),
                              (foreign, CheckpointMismatchError, "no key starts with 'backbone.'")):
        cfg = Config.fromfile(CONFIG)
        cfg.work_dir, cfg.load_from = str(tmp_path / 'c'), ckpt
        with pytest.raises(error, match=flag):
            Runner.from_cfg(cfg).test()
    # mmpretrain's get_model (a non-strict load): refused; model.backbone.deploy is the one switch
    from mmpretrain.apis import get_model
    with pytest.raises(CheckpointFormError, match='--cfg-options model.backbone.deploy=True'):
        get_model(CONFIG, pretrained=deploy_ckpt)
    deploy = get_model(CONFIG, pretrained=deploy_ckpt, backbone=dict(deploy=True)).eval()
    training = get_model(CONFIG, pretrained=osp.join(work_dir, 'epoch_2.pth')).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(deploy(x, mode='tensor'), training(x, mode='tensor'),
                                   rtol=1e-4, atol=1e-5)
