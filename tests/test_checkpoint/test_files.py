"""Reading bad checkpoint files, and writing checkpoints without ever losing one."""
import os

import pytest
import torch

from mmcnv2.checkpoint import files
from mmcnv2.checkpoint.files import (CheckpointNotFoundError, CheckpointReadError,
                                     OutputExistsError, read_checkpoint, save_checkpoint_file)
from tests.tool_utils import bad_checkpoints


@pytest.mark.parametrize('kind,error,message', [
    ('missing', CheckpointNotFoundError, 'checkpoint not found'),
    ('empty', CheckpointReadError, r'is empty \(0 bytes\)'),
    ('random', CheckpointReadError, 'truncated, corrupt or not a checkpoint'),
    ('truncated', CheckpointReadError, 'truncated, corrupt or not a checkpoint'),
])
def test_bad_files_are_named_errors(tmp_path, kind, error, message):
    path = bad_checkpoints(tmp_path)[kind]
    with pytest.raises(error, match=message) as info:
        read_checkpoint(path)
    assert path in str(info.value)


def test_not_a_dict_and_folder(tmp_path):
    torch.save([1, 2], tmp_path / 'list.pth')
    with pytest.raises(CheckpointReadError, match='holds a list'):
        read_checkpoint(str(tmp_path / 'list.pth'))
    with pytest.raises(CheckpointReadError, match='is a folder'):
        read_checkpoint(str(tmp_path))


def test_save_refuses_its_input_and_existing_files(tmp_path):
    src = tmp_path / 'train.pth'
    torch.save({'x': torch.ones(1)}, src)
    original = src.read_bytes()
    link = tmp_path / 'link.pth'
    link.symlink_to(src)
    (tmp_path / 'sub').mkdir()
    for out in (src, link, f'{tmp_path}/sub/../train.pth'):
        with pytest.raises(OutputExistsError, match='is the input'):
            save_checkpoint_file({'x': torch.zeros(1)}, str(out), [str(src)], force=True)
    assert src.read_bytes() == original
    other = tmp_path / 'other.pth'
    torch.save({'x': torch.ones(1)}, other)
    with pytest.raises(OutputExistsError, match='pass --force'):
        save_checkpoint_file({'x': torch.zeros(1)}, str(other), [str(src)])
    save_checkpoint_file({'x': torch.zeros(1)}, str(other), [str(src)], force=True)
    assert torch.load(other, weights_only=True)['x'].item() == 0
    nested = tmp_path / 'a' / 'b' / 'deploy.pth'
    save_checkpoint_file({'x': torch.zeros(1)}, str(nested))
    assert torch.load(nested, weights_only=True)['x'].item() == 0


def test_a_crash_while_writing_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    out = tmp_path / 'deploy.pth'
    torch.save({'x': torch.ones(1)}, out)
    original = out.read_bytes()

    def crash(obj, f):
        with open(f, 'wb') as file:
            file.write(b'PK\x03\x04 half a checkpoint')
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of torch.save

    monkeypatch.setattr(files.torch, 'save', crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint_file({'x': torch.zeros(1)}, str(out), force=True)
    assert out.read_bytes() == original
    assert os.listdir(tmp_path) == ['deploy.pth']
