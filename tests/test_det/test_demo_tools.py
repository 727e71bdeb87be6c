"""The detection demo config through the command-line tools, single and two-process."""
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = 'configs/demo/retinanet_cnv2_trees.py'
TINY = ['train_cfg.max_epochs=1', 'train_dataloader.dataset.indices=8',
        'val_dataloader.dataset.indices=2']


def run(cmd, env=None):
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, OMP_NUM_THREADS='1', **(env or {})))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('det_demo'))
    log = run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', work_dir,
               '--cfg-options', *TINY])
    return work_dir, log


def test_two_iteration_train_writes_both_forms(trained):
    work_dir, log = trained
    assert 'Epoch(train) [1][2/2]' in log
    assert osp.exists(osp.join(work_dir, 'epoch_1.pth'))
    assert osp.exists(osp.join(work_dir, 'epoch_1_deploy.pth'))
    assert 'deploy-form checkpoint' in log
    # the deploy checkpoint keeps the class names, so the inferencer says 'tree', not COCO's 'person'
    meta = torch.load(osp.join(work_dir, 'epoch_1_deploy.pth'), weights_only=True)['meta']
    assert tuple(meta['dataset_meta']['classes']) == ('tree',)


def test_test_tool_on_both_forms(trained):
    work_dir, _ = trained
    for ckpt, extra in (('epoch_1.pth', []),
                        ('epoch_1_deploy.pth', ['--cfg-options', 'model.backbone.deploy=True'])):
        log = run([sys.executable, 'tools/test.py', CONFIG, osp.join(work_dir, ckpt),
                   '--work-dir', osp.join(work_dir, 'test'), *extra])
        assert 'coco/bbox_mAP' in log


def test_infer_tool_draws_detections(trained, tmp_path):
    work_dir, _ = trained
    tile = sorted(glob.glob(osp.join(ROOT, 'demo_data/neon_trees/val/*.jpg')))[0]
    run([sys.executable, 'tools/infer.py', CONFIG, osp.join(work_dir, 'epoch_1_deploy.pth'),
         tile, '--out-dir', str(tmp_path), '--cfg-options', 'model.backbone.deploy=True'])
    assert os.listdir(tmp_path / 'vis') == [osp.basename(tile)]


def test_dist_train_script_two_cpu_processes(tmp_path):
    log = run(['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', str(tmp_path),
               '--cfg-options', *TINY], env=dict(PYTHON=sys.executable, PORT='29533'))
    assert 'Distributed training: True' in log and 'GPU number: 2' in log  # 2 processes
    # 8 images, batch 4, two ranks: one iteration each (two on a single process)
    assert 'Epoch(train) [1][1/1]' in log
    assert osp.exists(tmp_path / 'epoch_1.pth')


def test_mmdet_own_train_script_accepts_our_config(tmp_path):
    import mmdet
    script = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')
    assert osp.exists(script)
    run([sys.executable, script, CONFIG, '--work-dir', str(tmp_path), '--cfg-options', *TINY])
    assert osp.exists(tmp_path / 'epoch_1.pth')


def test_next_commands_printed_by_the_demo_run_as_written(trained, monkeypatch):
    """The demo's 'next' commands run as printed, from the directory the demo ran in: inference
    and the ONNX export for real on the demo's checkpoints; testing (run above with the same
    arguments), the comparison and the benchmark (hours of work) through their tools' own
    argument parsers."""
    import runpy
    import shlex

    from mmcnv2_tools.demo import DEMOS, next_commands
    work_dir, _ = trained
    result = dict(root=ROOT, config=osp.join(ROOT, DEMOS['det']['config']), work_dir=work_dir,
                  checkpoint=osp.join(work_dir, 'epoch_1.pth'),
                  deploy_checkpoint=osp.join(work_dir, 'epoch_1_deploy.pth'))
    commands = {}
    for entry in next_commands('det', result):
        comment, command = entry.splitlines()
        assert comment.startswith('# ')
        python, tool, *args = shlex.split(command)
        assert osp.samefile(python, sys.executable) and osp.isfile(tool), command
        commands[osp.basename(tool)] = command, tool, args
    assert sorted(commands) == ['benchmark.py', 'compare.py', 'export_onnx.py', 'infer.py',
                                'test.py']
    logs = {}
    for name in ('infer.py', 'export_onnx.py'):
        proc = subprocess.run(commands[name][0], shell=True, capture_output=True, text=True,
                              timeout=900, env=dict(os.environ, OMP_NUM_THREADS='1'))
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        logs[name] = proc.stdout + proc.stderr
    assert len(os.listdir(osp.join(work_dir, 'infer', 'vis'))) == 10  # every val tile
    assert osp.getsize(osp.join(work_dir, 'trees.onnx')) > 0
    assert 'onnxruntime vs PyTorch' in logs['export_onnx.py']
    parsed = {}
    for name in ('test.py', 'compare.py', 'benchmark.py'):
        _, tool, args = commands[name]
        monkeypatch.setattr(sys, 'argv', [tool, *args])
        parsed[name] = runpy.run_path(tool)['parse_args']()  # exits on an unknown flag or choice
    test = parsed['test.py']
    assert osp.samefile(test.checkpoint, result['deploy_checkpoint'])
    assert test.cfg_options == {'model.backbone.deploy': True}
    assert osp.dirname(test.work_dir) == work_dir  # not ./work_dirs of wherever it runs


@pytest.mark.parametrize('kind', ['det', 'cls'])
def test_next_commands_repeat_the_model_options_of_the_demo(kind, tmp_path, monkeypatch):
    """A demo trained with model changes (``--cfg-options model.*``) prints commands that
    build the same model: the tools' own parsers read the options back, the training-only
    options stay out."""
    import runpy
    import shlex

    from mmcnv2_tools.demo import DEMOS, next_commands
    options = {'model.neck.out_channels': 32, 'model.backbone.out_indices': [2, 3, 4],
               'model.test_cfg.score_thr': 0.1, 'model.backbone.arch.stem_stride': 1}
    result = dict(root=ROOT, config=osp.join(ROOT, DEMOS[kind]['config']),
                  work_dir=str(tmp_path), checkpoint=str(tmp_path / 'epoch_1.pth'),
                  deploy_checkpoint=str(tmp_path / 'epoch_1_deploy.pth'), model_options=options)
    parsed = {}
    for entry in next_commands(kind, result):
        _, tool, *args = shlex.split(entry.splitlines()[1])
        name = osp.basename(tool)
        if name in ('test.py', 'infer.py', 'export_onnx.py'):
            monkeypatch.setattr(sys, 'argv', [tool, *args])
            parsed[name] = runpy.run_path(tool)['parse_args']().cfg_options
    assert sorted(parsed) == sorted(['test.py', 'export_onnx.py']
                                    + (['infer.py'] if kind == 'det' else []))
    for name, got in parsed.items():
        want = dict(options, **({} if name == 'export_onnx.py' else
                                {'model.backbone.deploy': True}))
        assert got == want, name
