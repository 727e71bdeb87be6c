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

from tests.tool_utils import tool

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


CONFIG = osp.join(ROOT, 'configs/retinanet_cnv2_a.py')


@pytest.fixture(scope='module')
def small_config():
    """The config at 320 px and without the model's own score threshold (0.05, which a
    random-weight RetinaNet never reaches), for fast runs with boxes to save and draw."""
    cfg = Config.fromfile(CONFIG)
    cfg.model.test_cfg.score_thr = 0.0
    resize = [t for t in cfg.test_dataloader.dataset.pipeline if t.type == 'Resize']
    assert len(resize) == 1
    resize[0].scale = (320, 320)
    return cfg


def read_json(path):
    import json
    with open(path) as f:
        return json.load(f)


def test_saved_predictions_are_the_boxes_drawn(checkpoint, small_config, tmp_path):
    from mmcnv2.apis.inference import infer_images
    every = infer_images(small_config, checkpoint, [PHOTO], str(tmp_path / 'all'), score_thr=0.0)
    scores = every['predictions'][PHOTO]['scores']
    assert len(scores) > 10
    thr = float(np.median(scores))
    kept = [i for i, s in enumerate(scores) if s > thr]
    assert 0 < len(kept) < len(scores)
    out = infer_images(small_config, checkpoint, [PHOTO], str(tmp_path / 'thr'), score_thr=thr)
    saved = read_json(tmp_path / 'thr' / 'preds' / 'china.json')
    assert saved == out['predictions'][PHOTO]
    assert saved['scores'] == pytest.approx([scores[i] for i in kept])
    np.testing.assert_allclose(saved['bboxes'],
                               [every['predictions'][PHOTO]['bboxes'][i] for i in kept],
                               rtol=1e-5)


def test_large_images_are_drawn_downscaled(checkpoint, small_config, tmp_path):
    """A 3000x2400 picture is drawn on a copy of at most --max-vis-side pixels (mmdet draws
    at full resolution: about 160 bytes a pixel); predictions stay in the input's pixels."""
    import cv2
    from mmcnv2.apis.inference import infer_images
    big = str(tmp_path / 'big.jpg')
    photo = cv2.imread(PHOTO)
    cv2.imwrite(big, cv2.resize(photo, (3000, 2400), interpolation=cv2.INTER_LINEAR))
    runs = {}
    for side in (1200, 600):
        out = str(tmp_path / str(side))
        runs[side] = infer_images(small_config, checkpoint, [big, PHOTO], out, score_thr=0.0,
                                  max_vis_side=side)
        drawn = cv2.imread(osp.join(out, 'vis', 'big.jpg'))
        assert drawn.shape == (side * 4 // 5, side, 3)
        # the 640x427 photo: as it is within the bound, scaled down to it otherwise
        expected = (427, 640, 3) if side >= 640 else (round(427 * side / 640), side, 3)
        assert cv2.imread(osp.join(out, 'vis', 'china.jpg')).shape == expected
    assert runs[1200]['predictions'] == runs[600]['predictions']
    assert np.asarray(runs[600]['predictions'][big]['bboxes']).max() > 1200


def test_rescale_sample_scales_boxes_and_masks():
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    from mmcnv2.apis.inference import rescale_sample
    sample = DetDataSample()
    masks = torch.zeros(1, 40, 60, dtype=torch.bool)
    masks[0, 10:20, 30:50] = True
    sample.pred_instances = InstanceData(bboxes=torch.tensor([[30., 10., 50., 20.]]),
                                         scores=torch.tensor([0.9]), labels=torch.tensor([0]),
                                         masks=masks)
    half = rescale_sample(sample, 0.5)
    assert half.pred_instances.bboxes.tolist() == [[15., 5., 25., 10.]]
    assert half.pred_instances.masks.shape == (1, 20, 30)
    assert half.pred_instances.masks.sum() == 50
    assert sample.pred_instances.bboxes.tolist() == [[30., 10., 50., 20.]]  # a copy


def test_infer_tool_refuses_a_folder_without_images(checkpoint, tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'notes.txt').write_text('no image here')
    code = tool('infer.py', CONFIG, checkpoint, str(empty), '--out-dir',
                          str(tmp_path / 'out'))
    assert isinstance(code, str) and code.startswith('error: no image files in folder')
    assert str(empty) in code
    assert not osp.exists(tmp_path / 'out')


def test_infer_tool_reports_unreadable_files_and_processes_the_rest(
        checkpoint, tmp_path, capsys):
    import shutil
    text = tmp_path / 'readme.jpg'
    text.write_text('not an image')
    second = str(tmp_path / 'second.jpg')
    shutil.copy(PHOTO, second)
    code = tool('infer.py', CONFIG, checkpoint, PHOTO, str(text), second,
                          '--out-dir', str(tmp_path / 'out'), '--score-thr', '0.0',
                          '--cfg-options', 'test_dataloader.dataset.pipeline.1.scale=(320,320)')
    err = capsys.readouterr().err
    assert f'skipped {text}: not an image file that OpenCV can read' in err
    assert code == 'error: 1 input file(s) could not be read as images (listed above); the ' \
                   'other 2 were processed'
    assert sorted(os.listdir(tmp_path / 'out' / 'vis')) == ['china.jpg', 'second.jpg']
    assert sorted(os.listdir(tmp_path / 'out' / 'preds')) == ['china.json', 'second.json']


@pytest.fixture(scope='module')
def both_forms(tmp_path_factory):
    """A fully sparsified training-form RetinaNet-CondenseNetV2-A checkpoint and its deploy
    form (tools/convert.py's); the config builds the deploy form (deploy=True)."""
    from mmdet.datasets import CocoDataset
    from mmdet.registry import MODELS

    from mmcnv2.apis import convert_checkpoint
    from mmcnv2.models.deploy import sparse_layers
    from tests.utils import randomize_bn
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
    rounding may come in another order, so each box is matched to the closest of the other.

    A model with random weights scores its boxes within about 1e-3 of each other, so a
    rounding-level difference between the two forms can let NMS or the top-k cut keep a
    neighbour instead of a box: all but 2% of the boxes must match (random weights instead
    of the checkpoint's match none)."""
    labels_a, labels_b = (torch.as_tensor(np.asarray(d['labels'])) for d in (a, b))
    scores_a, scores_b = (torch.as_tensor(np.asarray(d['scores'])).double() for d in (a, b))
    boxes_a, boxes_b = (torch.as_tensor(np.asarray(d['bboxes'])).double() for d in (a, b))
    assert len(scores_a) > 0 and len(scores_a) == len(scores_b)
    torch.testing.assert_close(scores_a, scores_b, rtol=1e-4, atol=1e-6)  # sorted, best first
    distance = torch.cdist(boxes_a, boxes_b, p=float('inf'))
    distance += (scores_a[:, None] - scores_b[None]).abs() * 100  # 1e-4 apart: not the same
    distance[labels_a[:, None] != labels_b[None]] = float('inf')
    for side in (1, 0):
        matched = (distance.min(side).values < 1e-2).double().mean()
        assert matched >= 0.98, f'{matched:.1%} of the boxes match'


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
    assert_same_detections(*(r['predictions'][PHOTO] for r in results))
