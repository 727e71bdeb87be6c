"""Whole RetinaNet in ONNX: the exported graph's boxes against mmdet's own predict."""
import glob
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, MODELS

from mmcnv2.apis.detector_onnx import (SingleStageDetectorWithNMS, _test_pipeline,
                                       detect_with_onnx, export_detector_onnx,
                                       matched_fraction)
from mmcnv2.apis.export import load_deploy_model
from tests.tool_utils import tool
from tests.utils import trained_checkpoint

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs/demo/retinanet_cnv2_trees.py')
TILES = sorted(glob.glob(osp.join(ROOT, 'demo_data/neon_trees/val/*.jpg')))[:3]


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """The demo detector with random weights and BN statistics, fully sparsified; its class
    bias at 0 (not RetinaNet's prior of 0.01) so that hundreds of boxes pass the score
    threshold and NMS has work to do."""
    path = trained_checkpoint(CONFIG, tmp_path_factory.mktemp('det') / 'retinanet.pth')
    ckpt = torch.load(path, weights_only=True)
    ckpt['state_dict']['bbox_head.retina_cls.bias'].zero_()
    torch.save(ckpt, path)
    return path


@pytest.fixture(scope='module')
def deployed(checkpoint):
    """The deploy form, its config's test pipeline, and each tile as the data
    preprocessor gives it to the model."""
    model, cfg = load_deploy_model(CONFIG, checkpoint)
    pipeline = _test_pipeline(cfg)
    batches = []
    for tile in TILES:
        packed = pipeline(dict(img_path=tile, img_id=0))
        batches.append(model.data_preprocessor(dict(
            inputs=[packed['inputs']], data_samples=[packed['data_samples']]), False))
    return model, batches


def mmdet_predictions(deployed):
    """mmdet's ``predict`` (rescaled) of the deploy form on the tiles, one at a time."""
    model, batches = deployed
    with torch.no_grad():
        return [model.predict(b['inputs'], b['data_samples'])[0].pred_instances
                for b in batches]


def assert_same_boxes(ours, theirs):
    """The same boxes, each at IoU >= 0.99 with a score within 1e-3 (random weights leave
    near-tied scores, where float rounding may let NMS keep a neighbour: 98% must match)."""
    assert len(theirs.scores) > 50
    assert abs(len(ours['scores']) - len(theirs.scores)) <= 0.02 * len(theirs.scores)
    as_dets = lambda boxes, scores, labels: np.concatenate(  # noqa: E731
        [np.asarray(boxes), np.asarray(scores)[:, None], np.asarray(labels)[:, None],
         np.zeros((len(scores), 1))], 1).astype(np.float32)
    assert matched_fraction(as_dets(theirs.bboxes, theirs.scores, theirs.labels),
                            as_dets(ours['bboxes'], ours['scores'], ours['labels'])) >= 0.98


def test_module_equals_mmdet_predict_exactly(deployed):
    """The traceable module (before export) computes mmdet's boxes, scores and labels."""
    model, batches = deployed
    wrapper = SingleStageDetectorWithNMS(model, (416, 416)).eval()
    for data, theirs in zip(batches, mmdet_predictions(deployed)):
        meta = data['data_samples'][0].metainfo
        assert tuple(data['inputs'].shape[-2:]) == (416, 416)
        with torch.no_grad():
            dets = wrapper(data['inputs'], torch.tensor([meta['img_shape']]),
                           torch.tensor([meta['scale_factor']]))
        assert len(theirs.scores) > 50
        torch.testing.assert_close(dets[:, :4], theirs.bboxes, rtol=0, atol=1e-4)
        torch.testing.assert_close(dets[:, 4], theirs.scores, rtol=0, atol=1e-6)
        assert torch.equal(dets[:, 5].long(), theirs.labels) and (dets[:, 6] == 0).all()


def test_exported_detector_gives_mmdet_boxes_on_real_tiles(checkpoint, deployed, tmp_path):
    """tools/export_onnx.py --whole-detector, batches of 2 (the last one padded), run by
    detect_with_onnx on real tiles: mmdet's boxes."""
    out = str(tmp_path / 'new' / 'retinanet.onnx')
    proc = subprocess.run([sys.executable, 'tools/export_onnx.py', CONFIG, checkpoint, out,
                           '--whole-detector', '--batch', '2'], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert f'wrote {out}: inputs [2, 3, 416, 416]' in proc.stdout
    import onnx
    assert 'NonMaxSuppression' in {n.op_type for n in onnx.load(out).graph.node}
    ours = detect_with_onnx(out, CONFIG, TILES)
    assert len(ours) == len(TILES)
    for mine, theirs in zip(ours, mmdet_predictions(deployed)):
        assert_same_boxes(mine, theirs)
        assert np.all(np.diff(mine['scores']) <= 0)  # by descending score


def test_errors_name_what_is_supported(checkpoint, tmp_path):
    with pytest.raises(ValueError, match='not an mmdet config'):
        export_detector_onnx(osp.join(ROOT, 'configs/demo/cnv2_digits.py'), checkpoint,
                             str(tmp_path / 'x.onnx'))
    with pytest.raises(ValueError, match='batch_size must be an int >= 1, got 0'):
        export_detector_onnx(CONFIG, checkpoint, str(tmp_path / 'x.onnx'), batch_size=0)
    with pytest.raises(ValueError, match='shape must be two ints'):
        export_detector_onnx(CONFIG, checkpoint, str(tmp_path / 'x.onnx'), shape=(16, 16))
    faster = osp.join(ROOT, 'configs/faster_rcnn_cnv2_a.py')
    cfg = Config.fromfile(faster)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    with pytest.raises(ValueError, match='supports single-stage detectors with an '
                       'AnchorGenerator'):
        SingleStageDetectorWithNMS(model.eval(), (64, 64))


def test_cli_says_what_is_wrong(checkpoint, tmp_path):
    """Bad input to tools/export_onnx.py: one 'error: ...' line naming the rule."""
    digits = osp.join(ROOT, 'configs/demo/cnv2_digits.py')
    out = str(tmp_path / 'x.onnx')
    assert tool('export_onnx.py', digits, checkpoint, out, '--whole-detector') == (
        f"error: {digits} is not an mmdet config (default_scope 'mmpretrain'): whole-detector "
        'export is for detectors')
    assert tool('export_onnx.py', CONFIG, str(tmp_path / 'missing.pth'), out,
                '--whole-detector').startswith('error: ')
    assert tool('export_onnx.py', CONFIG, checkpoint, out, '--whole-detector', '--batch',
                '0') == 'error: batch_size must be an int >= 1, got 0'
