"""RetinaNet and Faster R-CNN with CondenseNetV2-C: training steps and predict on the device."""
import os.path as osp

import pytest
import torch
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope

from tests.test_gpu.utils import ROOT, image_size

CONFIGS = ['configs/retinanet_cnv2_c.py', 'configs/faster_rcnn_cnv2_c.py']


def build_detector(config: str, device: torch.device, **backbone):
    """The config's detector with random weights (no ImageNet checkpoint), on ``device``."""
    from mmdet.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.update(backbone)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    return model.to(device)


def trainable(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize('config', CONFIGS, ids=[osp.basename(c) for c in CONFIGS])
def test_training_steps_and_predict(config, det_device):
    model = build_detector(config, det_device)
    side = image_size(det_device, cuda=512, cpu=128)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    packed = demo_mm_inputs(2, [[3, side, side], [3, side, side + 32]], num_items=[3, 2])
    before = trainable(model)
    model.train()
    for _ in range(2):  # preprocess, loss, backward, optimizer step
        log_vars = model.train_step(packed, wrapper)
        assert torch.isfinite(log_vars['loss']), log_vars
    changed = {n for n, p in trainable(model).items() if not torch.equal(p, before[n])}
    assert any(n.startswith('backbone.') for n in changed) and any(
        n.startswith(('bbox_head.', 'roi_head.')) for n in changed)
    assert all(p.device.type == det_device.type for p in model.parameters())
    assert all(torch.isfinite(p).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        preds = model.test_step(demo_mm_inputs(1, [[3, side + 13, side - 21]]))
    bboxes = preds[0].pred_instances.bboxes
    assert bboxes.device.type == det_device.type and bboxes.shape[1] == 4
