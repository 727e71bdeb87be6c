"""Whole Faster R-CNN in ONNX (RPN, RoIAlign, box head, NMS) against mmdet's own predict, and
a whole-detector module for every detection config of ours."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, MODELS

from mmcnv2.apis.detector_onnx import (TwoStageDetectorWithNMS, _test_pipeline,
                                       detect_with_onnx, export_detector_onnx,
                                       whole_detector_module)
from mmcnv2.apis.export import load_deploy_model
from tests.test_tools.test_detector_onnx import (assert_module_equals_predictions,
                                                  assert_same_boxes)
from tests.utils import trained_checkpoint

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TILES = sorted(glob.glob(osp.join(ROOT, 'demo_data/neon_trees/val/*.jpg')))[:3]


@pytest.fixture(scope='module')
def config(tmp_path_factory):
    """configs/faster_rcnn_cnv2_a.py with one class, tested at 256 px, its FPN and box head
    narrowed (64 channels, 256-wide fcs) and 200 proposals, to keep the test fast: the same
    structure, every test setting read from the config."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs/faster_rcnn_cnv2_a.py'))
    cfg.model.backbone.init_cfg = None
    cfg.model.neck.out_channels = 64
    cfg.model.rpn_head.update(in_channels=64, feat_channels=64)
    cfg.model.roi_head.bbox_roi_extractor.out_channels = 64
    cfg.model.roi_head.bbox_head.update(num_classes=1, in_channels=64, fc_out_channels=256)
    cfg.model.test_cfg.rpn.update(nms_pre=300, max_per_img=200)
    resize = [t for t in cfg.test_dataloader.dataset.pipeline if t['type'] == 'Resize']
    resize[0]['scale'] = (256, 256)
    path = str(tmp_path_factory.mktemp('frcnn') / 'faster_rcnn_small.py')
    cfg.dump(path)
    return path


@pytest.fixture(scope='module')
def checkpoint(config, tmp_path_factory):
    torch.manual_seed(0)  # a module fixture is made before the autouse per-test seed
    return trained_checkpoint(config, tmp_path_factory.mktemp('frcnn') / 'faster_rcnn.pth')


@pytest.fixture(scope='module')
def deployed(config, checkpoint):
    """The deploy form, each tile as its data preprocessor gives it, and mmdet's predict."""
    model, cfg = load_deploy_model(config, checkpoint)
    pipeline = _test_pipeline(cfg)
    batches, predictions = [], []
    for tile in TILES:
        packed = pipeline(dict(img_path=tile))
        data = model.data_preprocessor(dict(inputs=[packed['inputs']],
                                            data_samples=[packed['data_samples']]), False)
        batches.append(data)
        with torch.no_grad():
            predictions.append(model.predict(data['inputs'], data['data_samples'])[0]
                               .pred_instances)
    return model, batches, predictions


def test_module_equals_mmdet_predict(deployed):
    """Before export: mmdet's boxes, scores and labels (RPN, mmcv's RoIAlign, box head and
    NMS against torchvision's roi_align and our post-processing)."""
    model, batches, predictions = deployed
    assert_module_equals_predictions(TwoStageDetectorWithNMS(model, (256, 256)).eval(),
                                     batches, predictions, (256, 256))


def test_exported_faster_rcnn_gives_mmdet_boxes_on_real_tiles(config, checkpoint, deployed,
                                                               tmp_path):
    """export_detector_onnx for batches of 2 (the last one padded), run in onnxruntime on
    real tiles: mmdet's boxes; ONNX RoiAlign as mmcv's RoIAlign(aligned=True)."""
    import onnx
    out = str(tmp_path / 'faster_rcnn.onnx')
    result = export_detector_onnx(config, checkpoint, out, batch_size=2)
    assert result['input_shape'] == [2, 3, 256, 256] and result['matched'] >= 0.98
    roi_align = [n for n in onnx.load(out).graph.node if n.op_type == 'RoiAlign']
    assert roi_align and all(
        {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}[
            'coordinate_transformation_mode'] == b'half_pixel' for n in roi_align)
    ours = detect_with_onnx(out, config, TILES)
    assert len(ours) == len(TILES)
    for mine, theirs in zip(ours, deployed[2]):
        assert_same_boxes(mine, theirs)


def test_refuses_what_it_does_not_compute(deployed):
    model = deployed[0]
    model.roi_head.bbox_roi_extractor.roi_layers[0].aligned = False
    try:
        with pytest.raises(ValueError, match=(
                r"roi_layers=\[\('RoIAlign', 'avg', False\), \('RoIAlign', 'avg', True\)\] "
                r"\(not \[\('RoIAlign', 'avg', True\)\]\)")):
            TwoStageDetectorWithNMS(model, (64, 64))
    finally:
        model.roi_head.bbox_roi_extractor.roi_layers[0].aligned = True


ALL_DETECTION_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs/faster_rcnn_*.py'))
                               + glob.glob(osp.join(ROOT, 'configs/retinanet_*.py')))


def one_per_detector_and_backbone(paths):
    """The first config of each (detector, backbone type): the whole-detector module
    depends on the backbone only through its feature maps, so widths of one family add
    nothing but time."""
    chosen = {}
    for path in paths:
        model = Config.fromfile(path).model
        chosen.setdefault((model.type, model.backbone.type), path)
    return sorted(chosen.values())


DETECTION_CONFIGS = one_per_detector_and_backbone(ALL_DETECTION_CONFIGS)


def narrowed(cfg, channels: int = 32):
    """``cfg``'s detector with one class and its FPN and heads ``channels`` wide (the
    backbone and every connection as configured): fast to build and run."""
    cfg.model.backbone.init_cfg = None
    cfg.model.neck.out_channels = channels
    if 'roi_head' in cfg.model:
        cfg.model.rpn_head.update(in_channels=channels, feat_channels=channels)
        cfg.model.roi_head.bbox_roi_extractor.out_channels = channels
        cfg.model.roi_head.bbox_head.update(num_classes=1, in_channels=channels,
                                            fc_out_channels=2 * channels)
        cfg.model.test_cfg.rpn.update(nms_pre=100, max_per_img=50)
    else:
        cfg.model.bbox_head.update(num_classes=1, in_channels=channels,
                                   feat_channels=channels)
    return cfg


def test_every_detection_config_has_a_whole_detector():
    """Build-only (export and mmdet's boxes are checked on one config per family above and
    in test_detector_onnx.py): one configs/faster_rcnn_*.py and configs/retinanet_*.py per
    backbone type (CondenseNetV2, SFR-ShuffleNetV2(+), ShuffleNetV2, MobileNetV2),
    random weights, one class, FPN and heads narrowed, gives its whole-detector module,
    which runs at 64x96 and returns boxes."""
    assert len(ALL_DETECTION_CONFIGS) >= 18
    kinds = {(Config.fromfile(p).model.type, Config.fromfile(p).model.backbone.type)
             for p in ALL_DETECTION_CONFIGS}
    assert len(DETECTION_CONFIGS) == len(kinds) >= 8  # every detector x backbone type
    for path in DETECTION_CONFIGS:
        cfg = narrowed(Config.fromfile(path))
        with DefaultScope.overwrite_default_scope('mmdet'):
            model = MODELS.build(cfg.model)
        if 'bbox_head' in cfg.model:  # RetinaNet's prior bias leaves no box above 0.05
            model.bbox_head.retina_cls.bias.data.zero_()
        wrapper = whole_detector_module(model.eval(), (64, 96))
        with torch.no_grad():
            dets = wrapper(torch.randn(1, 3, 64, 96), torch.tensor([[60, 90]]),
                           torch.tensor([[2.0, 2.0]]))
        assert dets.shape[1] == 7 and len(dets) > 0, path
        assert (dets[:, [0, 2]] <= 45).all() and (dets[:, [1, 3]] <= 30).all(), path
