"""Every shipped COCO detection config builds, matches its backbone, and trains/predicts."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'faster_rcnn_*.py')) +
                 glob.glob(osp.join(ROOT, 'configs', 'retinanet_*.py')))
NAMES = [osp.basename(c) for c in CONFIGS]


def test_table7_configs_are_shipped():
    expected = {f'faster_rcnn_{b}.py' for b in (
        'shufflenetv2_0.5x', 'shufflenetv2_1.0x', 'shufflenetv2_1.5x', 'mobilenetv2_1.0x',
        'cnv2_a', 'cnv2_b', 'cnv2_c', 'sfr_shufflenetv2_0.5x', 'sfr_shufflenetv2_1.0x',
        'sfr_shufflenetv2_1.5x', 'sfr_shufflenetv2plus_small', 'sfr_shufflenetv2plus_medium')}
    expected |= {f'retinanet_{b}.py' for b in (
        'mobilenetv2_1.0x', 'shufflenetv2_1.5x', 'cnv2_a', 'cnv2_b', 'cnv2_c',
        'sfr_shufflenetv2_1.5x')}
    assert expected <= set(NAMES)


def build(cfg):
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(cfg.model)


@pytest.mark.parametrize('config', CONFIGS, ids=NAMES)
def test_config_builds_and_matches_its_backbone(config):
    cfg = Config.fromfile(config)
    assert cfg.default_scope == 'mmdet'
    assert cfg.train_cfg.max_epochs == 12 and cfg.train_cfg.type == 'EpochBasedTrainLoop'
    assert cfg.train_dataloader.dataset.data_root.rstrip('/').endswith('data/coco')
    model = build(cfg).eval()
    with torch.no_grad():
        feats = model.backbone(torch.zeros(1, 3, 256, 320))
    channels = [f.shape[1] for f in feats]
    strides = [256 // f.shape[2] for f in feats]
    assert channels == list(cfg.model.neck.in_channels)
    if hasattr(model.backbone, 'out_channels'):
        assert [model.backbone.out_channels[i] for i in model.backbone.out_indices] == channels
    start = cfg.model.neck.get('start_level', 0)
    head = cfg.model.get('rpn_head', cfg.model.get('bbox_head'))
    anchor_strides = head.anchor_generator.strides
    used = strides[start:]
    assert list(anchor_strides[:len(used)]) == used, (anchor_strides, strides)
    if 'roi_head' in cfg.model:
        assert list(cfg.model.roi_head.bbox_roi_extractor.featmap_strides[:len(used)]) == used


@pytest.mark.parametrize('config', CONFIGS, ids=NAMES)
def test_loss_and_predict_step(config):
    cfg = Config.fromfile(config)
    model = build(cfg)
    model.init_weights()
    packed = demo_mm_inputs(2, [[3, 128, 160], [3, 96, 128]], num_items=[3, 2])
    data = model.data_preprocessor(packed, True)
    losses = model(**data, mode='loss')
    total = sum(v.sum() if torch.is_tensor(v) else sum(x.sum() for x in v)
                for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    model.eval()
    packed = demo_mm_inputs(1, [[3, 333, 517]])  # odd size
    with torch.no_grad():
        preds = model(**model.data_preprocessor(packed, False), mode='predict')
    assert preds[0].pred_instances.bboxes.shape[1] == 4
