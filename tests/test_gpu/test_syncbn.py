"""SyncBN configs build, and train as BN in a single process."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from tests.test_gpu.utils import ROOT, image_size
from tests.test_gpu.test_detectors import build_detector

SYNC_BN = dict(type='SyncBN', requires_grad=True)


def test_syncbn_classifier_config_builds(device):
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(f'{ROOT}/configs/imagenet/cnv2_c.py')
    cfg.model.backbone.norm_cfg = SYNC_BN
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model).to(device).train()
    norms = [m for m in model.backbone.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all(isinstance(m, torch.nn.SyncBatchNorm) for m in norms)
    side = image_size(device, cuda=224, cpu=64)
    logits = model(torch.randn(4, 3, side, side, device=device), mode='tensor')
    logits.sum().backward()
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize('config', ['configs/retinanet_cnv2_c.py', 'configs/faster_rcnn_cnv2_c.py'])
def test_syncbn_detector_config_builds(config, det_device):
    from mmdet.testing import demo_mm_inputs
    model = build_detector(config, det_device, norm_cfg=SYNC_BN, norm_eval=False).train()
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.backbone.modules())
    assert not any(type(m) is torch.nn.BatchNorm2d for m in model.backbone.modules())
    side = image_size(det_device, cuda=512, cpu=128)
    data = model.data_preprocessor(demo_mm_inputs(2, [[3, side, side]] * 2), True)
    loss, _ = model.parse_losses(model(**data, mode='loss'))
    loss.backward()
    assert torch.isfinite(loss)
