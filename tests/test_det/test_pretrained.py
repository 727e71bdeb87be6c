"""ImageNet classifier checkpoints (training or deploy form) into detector backbones."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS as CLS_MODELS

from mmcnv2.models.pretrained import PretrainedMismatchError
from mmcnv2.models.deploy import switch_model_to_deploy
from tests.utils import randomize_bn

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def classifier():
    torch.manual_seed(0)
    cfg = Config.fromfile(osp.join(ROOT, 'configs/imagenet/cnv2_a.py'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = CLS_MODELS.build(cfg.model)
    model.init_weights()
    randomize_bn(model)
    return model.eval()


def save(model, path, progress=0.5):
    model = copy.deepcopy(model)
    for _, m in model.backbone.sparse_layers():
        m.sparsify(progress)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return model


def detector(checkpoint, deploy=True):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, 'configs/retinanet_cnv2_a.py'))
    cfg.model.backbone.deploy = deploy
    cfg.model.backbone.init_cfg.checkpoint = str(checkpoint)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


def backbone_outputs(backbone, x):
    with torch.no_grad():
        return backbone.eval()(x)


@pytest.mark.parametrize('deploy_ckpt,deploy_det', [(False, True), (True, True), (False, False)])
def test_classifier_checkpoint_loads_into_detector(classifier, tmp_path, deploy_ckpt, deploy_det):
    ref = save(classifier, tmp_path / 'cls.pth')
    if deploy_ckpt:
        switch_model_to_deploy(ref)
        torch.save({'state_dict': ref.state_dict()}, tmp_path / 'cls.pth')
    det = detector(tmp_path / 'cls.pth', deploy=deploy_det)
    x = torch.randn(1, 3, 160, 192)
    ref_backbone = copy.deepcopy(ref.backbone)
    ref_backbone.out_indices = det.backbone.out_indices
    for a, b in zip(backbone_outputs(det.backbone, x), backbone_outputs(ref_backbone, x)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_partial_checkpoint_is_an_error(classifier, tmp_path):
    save(classifier, tmp_path / 'cls.pth')
    ckpt = torch.load(tmp_path / 'cls.pth', weights_only=True)
    del ckpt['state_dict']['backbone.stages.2.layers.1.conv2.conv.weight']
    torch.save(ckpt, tmp_path / 'partial.pth')
    with pytest.raises(PretrainedMismatchError, match=r'missing: stages\.2\.layers\.1\.conv2'):
        detector(tmp_path / 'partial.pth')


def test_unfinished_checkpoint_needs_training_form(classifier, tmp_path):
    save(classifier, tmp_path / 'mid.pth', progress=0.2)
    with pytest.raises(PretrainedMismatchError, match='not finished sparsifying'):
        detector(tmp_path / 'mid.pth', deploy=True)
    det = detector(tmp_path / 'mid.pth', deploy=False)  # keeps sparsifying under the hook
    assert {int(m.stage) for _, m in det.backbone.sparse_layers()} == {2}


def test_deploy_checkpoint_into_training_backbone_is_an_error(classifier, tmp_path):
    ref = save(classifier, tmp_path / 'cls.pth')
    switch_model_to_deploy(ref)
    torch.save({'state_dict': ref.state_dict()}, tmp_path / 'deploy.pth')
    with pytest.raises(PretrainedMismatchError, match='deploy=True'):
        detector(tmp_path / 'deploy.pth', deploy=False)


def test_wrong_prefix_is_an_error(classifier, tmp_path):
    save(classifier, tmp_path / 'cls.pth')
    ckpt = torch.load(tmp_path / 'cls.pth', weights_only=True)
    torch.save({'state_dict': {'encoder.' + k: v for k, v in ckpt['state_dict'].items()}},
               tmp_path / 'other.pth')
    with pytest.raises(PretrainedMismatchError, match="prefix 'backbone.'"):
        detector(tmp_path / 'other.pth')


def test_imported_official_checkpoint_loads_into_a_detector_backbone(tmp_path):
    from mmdet.registry import MODELS

    from mmcnv2.checkpoint import import_official
    r = import_official(osp.join(ROOT, 'tests/data/official_tiny/official_converted.pth'),
                        str(tmp_path / 'o.pth'))
    arch = r['meta']['mmcnv2']['arch']
    backbone = dict(type='CondenseNetV2', arch=arch, deploy=True, out_indices=(1, 2, 3, 4),
                    init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'o.pth'),
                                  prefix='backbone.'))
    with DefaultScope.overwrite_default_scope('mmdet'):
        bb = MODELS.build(backbone)
    bb.init_weights()
    ref = r['model'].backbone
    for k, v in ref.state_dict().items():
        assert torch.equal(bb.state_dict()[k], v), k
