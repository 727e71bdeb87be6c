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


@pytest.fixture(scope='module')
def both_forms(tmp_path_factory):
    """A fully sparsified training-form RetinaNet-CondenseNetV2-A checkpoint and its deploy
    form (tools/convert.py's); the config builds the deploy form (deploy=True)."""
    from mmdet.datasets import CocoDataset
    from mmdet.registry import MODELS

    from mmcnv2.apis import convert_checkpoint
    from mmcnv2.models.deploy import sparse_layers
    from tests.conftest import randomize_bn
    torch.manual_seed(0)
    cfg = Config.fromfile(osp.join(ROOT, 'configs/retinanet_cnv2_a.py'))
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.deploy = False
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    randomize_bn(model)
    for _, m in sparse_layers(model):
        m.sparsify(1.0)
    folder = tmp_path_factory.mktemp('forms')
    training = str(folder / 'training.pth')
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': {'classes': CocoDataset.METAINFO['classes']}}}, training)
    deploy = str(folder / 'deploy.pth')
    convert_checkpoint(osp.join(ROOT, 'configs/retinanet_cnv2_a.py'), training, deploy)
    return training, deploy


def keep_every_box():
    """The RetinaNet-A config (deploy=True) without a score threshold: a model with random
    weights scores its boxes about 0.01, below the config's 0.05."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs/retinanet_cnv2_a.py'))
    cfg.model.test_cfg.score_thr = 0.0
    return cfg


def assert_same_detections(a, b):
    """The same boxes (label, score, coordinates) in both; boxes whose scores tie to float
    rounding may come in another order, so each box is matched to the closest of the other."""
    labels_a, labels_b = (torch.as_tensor(np.asarray(d['labels'])) for d in (a, b))
    scores_a, scores_b = (torch.as_tensor(np.asarray(d['scores'])).double() for d in (a, b))
    boxes_a, boxes_b = (torch.as_tensor(np.asarray(d['bboxes'])).double() for d in (a, b))
    assert len(scores_a) > 0 and len(scores_a) == len(scores_b)
    torch.testing.assert_close(scores_a, scores_b, rtol=1e-4, atol=1e-6)
    distance = torch.cdist(boxes_a, boxes_b, p=float('inf'))
    distance += (scores_a[:, None] - scores_b[None]).abs() * 100  # 1e-4 apart: not the same
    distance[labels_a[:, None] != labels_b[None]] = float('inf')
    assert distance.min(1).values.max() < 1e-2 and distance.min(0).values.max() < 1e-2


def instances(sample):
    return {k: sample.pred_instances[k] for k in ('labels', 'scores', 'bboxes')}


def test_init_detector_never_runs_random_weights(both_forms):
    """The config builds the deploy form: its deploy checkpoint works, the training one is an
    error naming the option; with the option both give the same detections."""
    from mmdet.apis import DetInferencer, inference_detector, init_detector

    from mmcnv2.models.forms import CheckpointFormError
    training, deploy = both_forms
    config = osp.join(ROOT, 'configs/retinanet_cnv2_a.py')
    with pytest.raises(CheckpointFormError, match='--cfg-options model.backbone.deploy=False'):
        init_detector(config, training, device='cpu')
    with pytest.raises(CheckpointFormError, match='holds the training form'):
        DetInferencer(model=config, weights=training, device='cpu', show_progress=False)
    ref = inference_detector(init_detector(keep_every_box(), deploy, device='cpu'), PHOTO)
    out = inference_detector(init_detector(keep_every_box(), training, device='cpu',
                                           cfg_options={'model.backbone.deploy': False}), PHOTO)
    assert_same_detections(instances(out), instances(ref))


def test_infer_images_builds_the_form_of_the_checkpoint(both_forms, tmp_path):
    from mmcnv2.apis.inference import infer_images
    training, deploy = both_forms
    results = [infer_images(keep_every_box(), ckpt, [PHOTO], str(tmp_path / name), score_thr=0.0)
               for name, ckpt in (('training', training), ('deploy', deploy))]
    assert_same_detections(*(r['predictions'][0] for r in results))
