"""OpenMMLab's mim on an installed mmcnv2: list, search, train and test.

A copy of the checkout (as a fresh clone has it) is built into a wheel by setup.py,
which copies configs, tools and model-index.yml into mmcnv2/.mim, and the wheel is
unpacked into a folder that comes first on PYTHONPATH: an install as pip makes it,
without touching the environment or the checkout.
"""
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import zipfile

import pytest

pytest.importorskip('mim', reason='openmim is not installed (requirements/tests.txt)')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MIM = [sys.executable, '-m', 'mim']


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """PYTHONPATH-style environment with mmcnv2 installed from a freshly built wheel."""
    tmp = tmp_path_factory.mktemp('mim')
    source = tmp / 'source'
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        '.git', '.venv', '.mim', 'work_dirs', 'checkpoints', 'data', 'build', '*.egg-info',
        'tests', 'demo_data', 'docs', '__pycache__', '*.so', '*.pth'))
    env = dict(os.environ, MMCNV2_WITH_OPS='0')  # no C++ build: not what mim is about
    proc = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
                           '--no-build-isolation', '-q', '-w', str(tmp / 'dist'), str(source)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    wheel, = glob.glob(str(tmp / 'dist' / 'mmcnv2-*.whl'))
    names = zipfile.ZipFile(wheel).namelist()
    for expected in ('mmcnv2/.mim/model-index.yml', 'mmcnv2/.mim/configs/imagenet/cnv2_a.py',
                     'mmcnv2/.mim/configs/metafiles/condensenet_v2.yml',
                     'mmcnv2/.mim/configs/_base_/models/cnv2_classifier.py',
                     'mmcnv2/.mim/tools/train.py', 'mmcnv2/.mim/tools/test.py'):
        assert expected in names, expected
    site = tmp / 'site'
    zipfile.ZipFile(wheel).extractall(site)
    # the source tree is left with links to itself, not copies that would go stale
    assert osp.islink(source / 'mmcnv2' / '.mim' / 'configs')
    assert osp.samefile(source / 'mmcnv2' / '.mim' / 'configs', source / 'configs')
    env = dict(os.environ, PYTHONPATH=str(site))
    env.pop('MMCNV2_WITH_OPS', None)
    return dict(env=env, site=site, tmp=tmp)


def _mim(args, installed, **kwargs):
    return subprocess.run(MIM + args, env=installed['env'], capture_output=True, text=True,
                          cwd=installed['tmp'], timeout=900, **kwargs)


def test_mim_list_and_search(installed):
    proc = _mim(['list'], installed)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert any(line.split()[:2] == ['mmcnv2', '0.1.0'] for line in proc.stdout.splitlines())

    proc = _mim(['search', 'mmcnv2', '--model', 'condensenet-v2', '--json',
                 str(installed['tmp'] / 'cnv2.json')], installed)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.load(open(installed['tmp'] / 'cnv2.json'))  # {field: {model: value}}
    assert set(found['model'].values()) == {'condensenet-v2'}
    assert set(found['model']) == {
        'cnv2-a_8xb128_in1k', 'cnv2-b_8xb128_in1k', 'cnv2-c_8xb128_in1k',
        'cnv2-110_1xb64_cifar10', 'cnv2-110_1xb64_cifar100', 'cnv2-146_1xb64_cifar10',
        'cnv2-146_1xb64_cifar100', 'faster-rcnn_cnv2-a_fpn_1x_coco',
        'faster-rcnn_cnv2-b_fpn_1x_coco', 'faster-rcnn_cnv2-c_fpn_1x_coco',
        'retinanet_cnv2-c_fpn_1x_coco'}
    assert found['imagenet-1k/top_1_accuracy']['cnv2-a_8xb128_in1k'] == 64.4
    assert found['coco/box_ap']['retinanet_cnv2-c_fpn_1x_coco'] == 31.7
    assert found['config']['cnv2-c_8xb128_in1k'] == 'configs/imagenet/cnv2_c.py'


def test_mim_train_then_test(installed):
    work_dir = installed['tmp'] / 'work'
    cfg_options = ['train_cfg.max_epochs=1', 'train_dataloader.dataset.indices=16',
                   'train_dataloader.batch_size=8', 'val_dataloader.dataset.indices=16',
                   'param_scheduler.0.T_max=1', 'param_scheduler.0.end=1',
                   'train_cfg.val_interval=1', 'default_hooks.logger.interval=1']
    # a config name that is not a path: mim finds it in mmcnv2/.mim/configs
    proc = _mim(['train', 'mmcnv2', 'cnv2_digits.py', '--work-dir', str(work_dir),
                 '--cfg-options'] + cfg_options, installed)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    site = str(installed['site'])
    assert f'{site}/mmcnv2/.mim/tools/train.py' in proc.stdout  # mim ran our tool
    assert osp.isfile(work_dir / 'epoch_1.pth')

    proc = _mim(['test', 'mmcnv2', 'cnv2_digits.py', '--checkpoint', str(work_dir / 'epoch_1.pth'),
                 '--work-dir', str(installed['tmp'] / 'test'), '--cfg-options',
                 'test_dataloader.dataset.indices=16'], installed)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f'{site}/mmcnv2/.mim/tools/test.py' in proc.stdout
    assert 'accuracy/top1' in proc.stdout + proc.stderr


def test_installed_package_registers_its_model_zoo(installed):
    # mmpretrain.get_model by name on an installed mmcnv2: the configs come from its .mim
    code = ('import mmpretrain, mmcnv2; '
            "model = mmpretrain.get_model('cnv2-b_8xb128_in1k'); "
            'print(mmcnv2.__file__); print(model._config.filename)')
    proc = subprocess.run([sys.executable, '-c', code], env=installed['env'], cwd=installed['tmp'],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    package, config = proc.stdout.split()[-2:]
    site = str(installed['site'])
    assert package == osp.join(site, 'mmcnv2', '__init__.py')
    assert config == osp.join(site, 'mmcnv2', '.mim', 'configs', 'imagenet', 'cnv2_b.py')
