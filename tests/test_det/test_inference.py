"""mmdet's inference APIs on our configs and checkpoints, on a real photo."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import sklearn
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PHOTO = osp.join(osp.dirname(sklearn.__file__), 'datasets', 'images', 'china.jpg')  # real, 427x640


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A RetinaNet-CondenseNetV2-A checkpoint as tools/train.py would save it."""
    from mmdet.registry import MODELS
    from mmdet.datasets import CocoDataset
    cfg = Config.fromfile(osp.join(ROOT, 'configs/retinanet_cnv2_a.py'))
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    path = str(tmp_path_factory.mktemp('det') / 'retinanet_cnv2_a.pth')
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': {'classes': CocoDataset.METAINFO['classes']}}}, path)
    return path


def test_init_detector_and_inference_detector(checkpoint):
    from mmdet.apis import inference_detector, init_detector
    model = init_detector(osp.join(ROOT, 'configs/retinanet_cnv2_a.py'), checkpoint, device='cpu')
    assert model.dataset_meta['classes'][0] == 'person'
    result = inference_detector(model, PHOTO)
    assert result.pred_instances.bboxes.shape[1] == 4
    assert result.metainfo['ori_shape'] == (427, 640)


def test_det_inferencer_and_infer_tool(checkpoint, tmp_path):
    from mmdet.apis import DetInferencer
    inferencer = DetInferencer(model=osp.join(ROOT, 'configs/retinanet_cnv2_a.py'),
                               weights=checkpoint, device='cpu', show_progress=False)
    out = inferencer(PHOTO, return_vis=True, no_save_vis=True)
    assert out['visualization'][0].shape == (427, 640, 3)
    proc = subprocess.run([sys.executable, 'tools/infer.py', 'configs/retinanet_cnv2_a.py',
                           checkpoint, PHOTO, '--out-dir', str(tmp_path), '--score-thr', '0.0'],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.listdir(tmp_path / 'vis') == ['china.jpg']
    assert os.listdir(tmp_path / 'preds') == ['china.json']
    from PIL import Image
    assert np.asarray(Image.open(tmp_path / 'vis' / 'china.jpg')).shape == (427, 640, 3)
