"""ONNX export of the deploy forms: onnxruntime agrees with PyTorch to 1e-4 (max abs)."""
import os.path as osp
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, MODELS

from mmcnv2.apis.deploy import convert_checkpoint
from mmcnv2.apis.export import build_deploy_model, export_onnx
from mmcnv2.models.deploy import sparse_layers
from tests.conftest import randomize_bn

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def trained_checkpoint(config, path, progress=1.0):
    """A training-form checkpoint: random weights and BN stats, masks at ``progress``."""
    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.model.backbone.pop('init_cfg', None)
    cfg.model.backbone.deploy = False
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    model.init_weights()
    randomize_bn(model)
    for _, m in sparse_layers(model):
        m.sparsify(progress)
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return str(path)


def ort_outputs(path, x):
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    return session.run(None, {'inputs': x.numpy()})


def check_round_trip(config, ckpt, onnx_path, shape, backbone_only=False):
    """Compare onnxruntime with the PyTorch deploy form on a batch of 2 (dynamic batch)."""
    model, _ = build_deploy_model(osp.join(ROOT, config), ckpt)
    x = torch.randn(2, 3, *shape)
    with torch.no_grad():
        ref = model.backbone(x) if backbone_only else [model(x, mode='tensor')]
    outs = ort_outputs(onnx_path, x)
    assert len(outs) == len(ref)
    for o, r in zip(outs, ref):
        assert o.shape == tuple(r.shape)
        assert np.abs(o - r.numpy()).max() <= 1e-4


# CondenseNetV2-A is exported as the RetinaNet backbone below (the dynamo exporter
# takes 40-70 s per model on 2 cores, so the suite does not export A twice).
@pytest.mark.parametrize('arch,form', [('b', 'deploy'), ('c', 'training')])
def test_condensenet_v2_classifier_round_trip(tmp_path, arch, form):
    config = f'configs/imagenet/cnv2_{arch}.py'
    ckpt = trained_checkpoint(config, tmp_path / 'train.pth')
    if form == 'deploy':
        convert_checkpoint(osp.join(ROOT, config), ckpt, str(tmp_path / 'deploy.pth'))
        ckpt = str(tmp_path / 'deploy.pth')
    out = str(tmp_path / f'cnv2_{arch}.onnx')
    r = export_onnx(osp.join(ROOT, config), ckpt, out, shape=(96, 96))
    assert r['max_abs_diff'] <= 1e-4 and r['output_names'] == ['logits']
    check_round_trip(config, ckpt, out, (96, 96))


def test_detector_exports_backbone_features(tmp_path):
    """CondenseNetV2-A in an mmdet RetinaNet config: the backbone's four feature maps."""
    config = 'configs/retinanet_cnv2_a.py'
    ckpt = trained_checkpoint(config, tmp_path / 'det.pth')
    out = str(tmp_path / 'retinanet_cnv2_a_backbone.onnx')
    r = export_onnx(osp.join(ROOT, config), ckpt, out, shape=(96, 128))
    assert r['output_names'] == ['feat0', 'feat1', 'feat2', 'feat3']
    check_round_trip(config, ckpt, out, (96, 128), backbone_only=True)


def test_cli_sfr_shufflenet_round_trip(tmp_path):
    config = 'configs/imagenet/sfr_shufflenetv2_1.0x.py'
    ckpt = trained_checkpoint(config, tmp_path / 'sfr.pth')
    out = str(tmp_path / 'sfr.onnx')
    proc = subprocess.run([sys.executable, 'tools/export_onnx.py', config, ckpt, out,
                           '--shape', '96', '96'], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'max abs difference' in proc.stdout
    check_round_trip(config, ckpt, out, (96, 96))


def test_bad_input_is_refused(tmp_path):
    config = osp.join(ROOT, 'configs/imagenet/cnv2_a.py')
    unfinished = trained_checkpoint('configs/imagenet/cnv2_a.py', tmp_path / 'u.pth', 0.2)
    with pytest.raises(ValueError, match='has not finished sparsifying|not finished'):
        export_onnx(config, unfinished, str(tmp_path / 'u.onnx'))
    done = trained_checkpoint('configs/imagenet/cnv2_a.py', tmp_path / 'd.pth')
    with pytest.raises(ValueError, match=r'shape must be two ints \(H, W\), each >= 32'):
        export_onnx(config, done, str(tmp_path / 'd.onnx'), shape=(16, 16))
    with pytest.raises(ValueError, match='backbone_only must be True for a detector'):
        export_onnx(osp.join(ROOT, 'configs/retinanet_cnv2_a.py'), done,
                    str(tmp_path / 'x.onnx'), backbone_only=False)
    assert not osp.exists(tmp_path / 'u.onnx') and not osp.exists(tmp_path / 'd.onnx')
