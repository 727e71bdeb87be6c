"""Missing datasets and pretrained weights say what to do, before anything is built; data
roots do not depend on the working directory."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmcnv2.apis import MissingInputsError, check_inputs, train
from mmcnv2.models.pretrained import PretrainedNotFoundError
from mmcnv2.models import CondenseNetV2
from tests.tool_utils import ROOT, tool

RETINANET_C = osp.join(ROOT, 'configs/retinanet_cnv2_c.py')


def test_train_without_coco_and_weights(tmp_path, monkeypatch):
    monkeypatch.setenv('COCO_ROOT', str(tmp_path / 'coco'))
    monkeypatch.chdir(tmp_path)  # no checkpoints/ here
    with pytest.raises(MissingInputsError) as info:
        train(RETINANET_C, work_dir=str(tmp_path / 'work'))
    message = str(info.value)
    for text in ('COCO_ROOT', str(tmp_path / 'coco'), 'annotations/instances_train2017.json',
                 'train2017/', 'val2017/', 'checkpoints/cnv2_c_imagenet.pth',
                 'python tools/train.py configs/imagenet/cnv2_c.py', 'tools/import_official.py',
                 '--cfg-options model.backbone.init_cfg=None'):
        assert text in message, text
    assert not osp.exists(tmp_path / 'work')  # nothing was built
    message = tool('train.py', RETINANET_C, '--work-dir', tmp_path / 'work')
    assert message.startswith('error: the run cannot start') and 'COCO_ROOT' in message


def test_missing_pretrained_weights_at_init_time(tmp_path):
    """What mmdet's and mmpretrain's own train scripts reach: the backbone's init."""
    path = str(tmp_path / 'cnv2_a_imagenet.pth')
    backbone = CondenseNetV2('a', init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(PretrainedNotFoundError) as info:
        backbone.init_weights()
    message = str(info.value)
    assert f'pretrained weights not found: {path}' in message
    assert 'configs/imagenet/cnv2_a.py' in message and 'import_official.py' in message
    assert 'model.backbone.init_cfg=None' in message
    relative = CondenseNetV2('a', init_cfg=dict(type='Pretrained', checkpoint='no/such.pth'))
    with pytest.raises(PretrainedNotFoundError) as info:
        relative.init_weights()
    assert (f'looked for as {osp.abspath("no/such.pth")}: a relative path is read from the '
            'working directory') in str(info.value)


def test_imagenet_configs_read_imagenet_root(tmp_path, monkeypatch):
    config = osp.join(ROOT, 'configs/imagenet/cnv2_a.py')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('IMAGENET_ROOT', raising=False)
    cfg = Config.fromfile(config)
    for split in ('train', 'val', 'test'):
        root = cfg[f'{split}_dataloader'].dataset.data_root
        assert osp.normpath(root) == osp.join(ROOT, 'data', 'imagenet') and root.endswith('/')
    monkeypatch.setenv('IMAGENET_ROOT', str(tmp_path / 'imagenet'))
    cfg = Config.fromfile(config)
    for split in ('train', 'val', 'test'):
        assert cfg[f'{split}_dataloader'].dataset.data_root == str(tmp_path / 'imagenet') + '/'
    with pytest.raises(MissingInputsError, match=r'train/<class>/\*\.JPEG.*IMAGENET_ROOT'):
        check_inputs(cfg, ('train', ), pretrained=False)


def test_configs_find_their_data_from_any_directory(tmp_path, monkeypatch):
    from mmdet.registry import DATASETS
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('COCO_ROOT', raising=False)
    cfg = Config.fromfile(osp.join(ROOT, 'configs/demo/retinanet_cnv2_trees.py'))
    check_inputs(cfg, ('train', 'val', 'test'))  # nothing missing
    with DefaultScope.overwrite_default_scope('mmdet'):
        assert len(DATASETS.build(cfg.val_dataloader.dataset)) == 10
    assert osp.isfile(cfg.val_evaluator.ann_file)
    cfg = Config.fromfile(RETINANET_C)
    assert osp.normpath(cfg.train_dataloader.dataset.data_root) == osp.join(ROOT, 'data', 'coco')
    assert osp.normpath(cfg.val_evaluator.ann_file) == osp.join(
        ROOT, 'data', 'coco', 'annotations', 'instances_val2017.json')
