"""Bad files given to the tools end in ``error: ...`` (exit status 1), not a traceback, and no
tool overwrites its input or an existing file unasked."""
import os.path as osp

import pytest
import torch

from mmcnv2.apis import convert_checkpoint
from tests.runner_utils import run, tiny_cfg
from tests.tool_utils import ROOT, bad_checkpoints, tool

OFFICIAL = osp.join(ROOT, 'tests', 'data', 'official_tiny', 'official_converted.pth')


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    """A tiny classifier trained through its sparsification (iter_4.pth), its config file,
    and its deploy form."""
    folder = tmp_path_factory.mktemp('tiny')
    cfg = tiny_cfg(folder / 'run', iters=4)
    run(cfg, record=False)
    cfg.custom_imports = dict(imports=['mmcnv2'], allow_failed_imports=False)
    config = str(folder / 'tiny.py')
    cfg.dump(config)
    ckpt = str(folder / 'run' / 'iter_4.pth')
    deploy = str(folder / 'deploy.pth')
    convert_checkpoint(config, ckpt, deploy)
    return dict(config=config, ckpt=ckpt, deploy=deploy, folder=folder)


@pytest.mark.parametrize('kind', ['missing', 'empty', 'random', 'truncated'])
def test_bad_checkpoint_files(tiny_run, tmp_path, kind):
    path = bad_checkpoints(tmp_path)[kind]
    config = tiny_run['config']
    for script, args in (('convert.py', (config, path, tmp_path / 'out.pth')),
                         ('test.py', (config, path, '--work-dir', tmp_path / 'w')),
                         ('train.py', (config, '--resume', path, '--work-dir', tmp_path / 'w'))):
        message = tool(script, *args)
        assert isinstance(message, str) and message.startswith('error: '), (script, message)
        assert path in message
        assert ('not found' if kind == 'missing' else 'not a checkpoint') in message
    assert not osp.exists(tmp_path / 'out.pth')


def test_convert_never_overwrites_its_input(tiny_run, tmp_path):
    ckpt = tiny_run['ckpt']
    before = open(ckpt, 'rb').read()
    link = tmp_path / 'link.pth'
    link.symlink_to(ckpt)
    for out in (ckpt, link):
        for extra in ((), ('--force', )):
            message = tool('convert.py', tiny_run['config'], ckpt, out, *extra)
            assert message.startswith('error: ') and 'is the input' in message
    assert open(ckpt, 'rb').read() == before
    assert torch.load(ckpt, weights_only=True)['meta'].get('mmcnv2', {}).get('form') != 'deploy'


def test_convert_output_folders_and_force(tiny_run, tmp_path):
    out = tmp_path / 'new' / 'folder' / 'deploy.pth'
    assert tool('convert.py', tiny_run['config'], tiny_run['ckpt'], out) is None
    first = torch.load(out, weights_only=True)
    assert first['meta']['mmcnv2']['form'] == 'deploy'
    message = tool('convert.py', tiny_run['config'], tiny_run['ckpt'], out)
    assert message.startswith('error: ') and '--force' in message
    assert tool('convert.py', tiny_run['config'], tiny_run['ckpt'], out, '--force') is None
    assert sorted(p.name for p in out.parent.iterdir()) == ['deploy.pth']  # no temporary left


def test_convert_refuses_a_deploy_checkpoint(tiny_run, tmp_path):
    message = tool('convert.py', tiny_run['config'], tiny_run['deploy'], tmp_path / 'x.pth')
    assert message.startswith('error: ') and 'already in deploy form' in message


def test_import_official_never_overwrites_and_checks_config(tmp_path):
    src = tmp_path / 'official.pth'
    src.write_bytes(open(OFFICIAL, 'rb').read())
    message = tool('import_official.py', src, src, '--force')
    assert message.startswith('error: ') and 'is the input' in message
    assert src.read_bytes() == open(OFFICIAL, 'rb').read()
    out = tmp_path / 'a' / 'b' / 'imported.pth'
    assert tool('import_official.py', src, out) is None
    message = tool('import_official.py', src, out)
    assert message.startswith('error: ') and '--force' in message
    # the tiny official model is not CondenseNetV2-A: a mismatched --config is named, not a
    # traceback, and nothing is written
    message = tool('import_official.py', src, tmp_path / 'c.pth', '--config',
                   osp.join(ROOT, 'configs/imagenet/cnv2_a.py'))
    assert message.startswith('error: ') and 'does not match' in message
    assert 'shape mismatch' in message and 'deploy form' in message
    assert not osp.exists(tmp_path / 'c.pth')
    for kind, path in bad_checkpoints(tmp_path).items():
        message = tool('import_official.py', path, tmp_path / 'd.pth')
        assert message.startswith('error: ') and path in message, kind


def test_resume_from_another_form_is_refused_before_training(tiny_run, tmp_path):
    message = tool('train.py', tiny_run['config'], '--resume', tiny_run['deploy'],
                   '--work-dir', tmp_path / 'w')
    assert message.startswith('error: ') and 'holds the deploy form' in message
    assert not osp.exists(tmp_path / 'w' / 'iter_1.pth')
