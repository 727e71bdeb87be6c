"""The model index (generated from the paper's tables) and mmpretrain's ModelHub, get_model
and ImageClassificationInferencer on our models, checkpoints of both forms and fused models."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch

import mmpretrain
from mmcnv2.model_zoo import METAFILE_DIR, register_model_hub
from mmcnv2.models import fuse_for_inference, switch_model_to_deploy
from mmcnv2.models.deploy import sparse_layers
from mmcnv2_tools.model_index import model_index_files, outdated_model_index_files
from tests.utils import randomize_bn

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CNV2_A = 'cnv2-a_8xb128_in1k'


@pytest.fixture(scope='module')
def model_index():
    from modelindex.load_model_index import load
    index = load(osp.join(ROOT, 'model-index.yml'))
    index.build_models_with_collections()
    return {m.name: m for m in index.models}


def test_committed_files_are_the_generated_ones(tmp_path):
    # reads every config: ~20 s, mostly mmengine resolving their mmpretrain::/mmdet:: bases
    # through those packages' model indexes
    files = model_index_files(ROOT)
    assert outdated_model_index_files(ROOT, files) == {}, 'run python tools/model_index.py'
    assert list(files) == ['model-index.yml'] + [
        f'{METAFILE_DIR}/{name}.yml' for name in ('condensenet_v2', 'sfr_shufflenet_v2',
                                                 'sfr_shufflenet_v2_plus', 'condensenet',
                                                 'shufflenet_v2_plus', 'coco_detection')]
    # and what the check reports on a copy that went stale
    stale = tmp_path / 'repo'
    for path, text in files.items():
        (stale / path).parent.mkdir(parents=True, exist_ok=True)
        (stale / path).write_text(text)
    (stale / f'{METAFILE_DIR}/condensenet.yml').write_text('Models: []\n')
    (stale / f'{METAFILE_DIR}/old.yml').write_text('Models: []\n')
    (stale / f'{METAFILE_DIR}/coco_detection.yml').unlink()
    assert outdated_model_index_files(str(stale), files) == {
        f'{METAFILE_DIR}/condensenet.yml': 'differs from the generated file',
        f'{METAFILE_DIR}/coco_detection.yml': 'missing',
        f'{METAFILE_DIR}/old.yml': 'not generated'}


def test_model_index_holds_the_papers_figures(model_index):
    # (top-1 %, top-5 %) = 100 - the error rates of the paper's Tables 3, 5, 6, 14
    expected = {
        CNV2_A: (64.4, 84.2), 'cnv2-c_8xb128_in1k': (75.9, 92.7),
        'sfr-shufflenetv2-0.5x_8xb128_in1k': (61.7, 83.0),
        'sfr-shufflenetv2plus-medium_8xb128_in1k': (76.1, 92.7),
        'shufflenetv2plus-small_8xb128_in1k': (74.1, 91.7),
        'condensenet-c_8xb128_in1k': (71.0, 90.0),
        'cnv2-110_1xb64_cifar10': (95.35, None), 'cnv2-146_1xb64_cifar100': (77.48, None),
    }
    for name, (top1, top5) in expected.items():
        metrics = model_index[name].results[0].metrics
        assert metrics['Top 1 Accuracy'] == pytest.approx(top1), name
        assert metrics.get('Top 5 Accuracy') == (None if top5 is None else pytest.approx(top5))
    a = model_index[CNV2_A]
    assert a.config == 'configs/imagenet/cnv2_a.py'
    assert a.in_collection == 'CondenseNet-V2'
    assert a.metadata.flops == 46_000_000 and a.metadata.parameters == 2_000_000
    assert a.metadata.epochs == 350 and a.metadata.batch_size == 1024
    assert a.results[0].dataset == 'ImageNet-1k'
    # the paper's CIFAR models are not exactly ours (depths are our reading): no FLOPs
    assert model_index['cnv2-110_1xb64_cifar10'].metadata.flops is None
    assert model_index['cnv2-110_1xb64_cifar10'].metadata.batch_size == 64
    # Table 7, including the row the paper misprints as 0.5x
    det = {'retinanet_cnv2-c_fpn_1x_coco': 31.7, 'faster-rcnn_cnv2-a_fpn_1x_coco': 23.5,
           'faster-rcnn_shufflenetv2-1.0x_fpn_1x_coco': 27.4,
           'faster-rcnn_sfr-shufflenetv2-1.5x_fpn_1x_coco': 30.7,
           'retinanet_mobilenetv2-1.0x_fpn_1x_coco': 29.7}
    for name, ap in det.items():
        assert model_index[name].results[0].metrics == {'box AP': ap}
        assert model_index[name].results[0].task == 'Object Detection'
    assert model_index['retinanet_cnv2-c_fpn_1x_coco'].in_collection == 'CondenseNet-V2'
    assert model_index['retinanet_cnv2-c_fpn_1x_coco'].metadata.epochs == 12
    assert len(model_index) == 17 + 11


def test_every_entry_is_the_papers_and_has_no_weights(model_index):
    for name, model in model_index.items():
        assert model.weights is None, name  # nothing is published with mmcnv2
        assert model.metadata.data['Results From'].startswith('paper, Table'), name
        assert osp.isfile(osp.join(ROOT, model.config)), model.config
    notes = {n for n, m in model_index.items() if 'own recipe' in m.metadata.data['Results From']}
    assert notes == {f'condensenet-{x}_8xb128_in1k' for x in 'abc'}


def test_list_models_finds_our_classifiers_only():
    assert mmpretrain.list_models('*cnv2*') == sorted([
        'cnv2-a_8xb128_in1k', 'cnv2-b_8xb128_in1k', 'cnv2-c_8xb128_in1k',
        'cnv2-110_1xb64_cifar10', 'cnv2-110_1xb64_cifar100', 'cnv2-146_1xb64_cifar10',
        'cnv2-146_1xb64_cifar100'])
    classifiers = mmpretrain.list_models(task='Image Classification')
    assert 'sfr-shufflenetv2plus-small_8xb128_in1k' in classifiers
    assert 'condensenet-b_8xb128_in1k' in classifiers
    assert not mmpretrain.list_models('retinanet_cnv2')  # detectors: mim search only
    before = mmpretrain.list_models()
    assert register_model_hub() == []  # registered on import; again is a no-op
    assert mmpretrain.list_models() == before


def _trained_like(name):
    """A fully sparsified classifier with non-trivial weights and its deploy twin."""
    model = mmpretrain.get_model(name)
    for _, layer in sparse_layers(model):
        layer.sparsify(1.0)
    randomize_bn(model).eval()
    deploy = copy.deepcopy(model)
    switch_model_to_deploy(deploy)
    return model, deploy.eval()


def _save(model, path):
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': {'classes': [f'c{i}' for i in range(1000)]}}}, path)
    return str(path)


def test_get_model_loads_training_and_deploy_checkpoints(tmp_path):
    model, deploy = _trained_like(CNV2_A)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x, mode='tensor')
        training = mmpretrain.get_model(CNV2_A, pretrained=_save(model, tmp_path / 't.pth'))
        assert torch.equal(training(x, mode='tensor'), expected)
        condensed = mmpretrain.get_model(CNV2_A, pretrained=_save(deploy, tmp_path / 'd.pth'),
                                         backbone=dict(deploy=True))
        assert all(m.deploy for _, m in sparse_layers(condensed))
        torch.testing.assert_close(condensed(x, mode='tensor'), expected, rtol=1e-4, atol=1e-5)
    assert training._dataset_meta['classes'][3] == 'c3'  # get_model keeps the checkpoint's


def test_one_classifier_of_each_family_builds_by_name(model_index):
    backbones = {'cnv2-110_1xb64_cifar10': 'CondenseNetV2', 'condensenet-a_8xb128_in1k':
                 'CondenseNet', 'sfr-shufflenetv2-0.5x_8xb128_in1k': 'SFRShuffleNetV2',
                 'sfr-shufflenetv2plus-small_8xb128_in1k': 'SFRShuffleNetV2Plus',
                 'shufflenetv2plus-small_8xb128_in1k': 'ShuffleNetV2Plus'}
    collections = {model_index[name].in_collection for name in backbones}
    assert len(collections) == 5  # every classifier family
    for name, backbone in backbones.items():
        model = mmpretrain.get_model(name)
        assert model._metainfo.name == name
        assert type(model.backbone).__name__ == backbone


def _image(path):
    import mmcv
    rng = np.random.default_rng(0)
    mmcv.imwrite(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8), str(path))
    return str(path)


def test_inferencer_by_name_with_deploy_checkpoint_and_with_fused_model(tmp_path):
    from mmpretrain import ImageClassificationInferencer

    model, deploy = _trained_like(CNV2_A)
    ckpt, image = _save(deploy, tmp_path / 'd.pth'), _image(tmp_path / 'x.png')
    by_name = ImageClassificationInferencer(CNV2_A, pretrained=ckpt, backbone=dict(deploy=True))
    by_config = ImageClassificationInferencer(
        osp.join(ROOT, 'configs/imagenet/cnv2_a.py'), pretrained=ckpt,
        backbone=dict(deploy=True))
    fused = mmpretrain.get_model(CNV2_A, pretrained=ckpt, backbone=dict(deploy=True))
    fuse_for_inference(fused)
    by_instance = ImageClassificationInferencer(fused)
    results = [inf(image, show_dir=str(tmp_path / f'vis{i}'))[0]
               for i, inf in enumerate((by_name, by_config, by_instance))]
    # the model that was saved, fed the same preprocessed image
    data = by_name.pipeline(dict(img=__import__('mmcv').imread(image), img_shape=(80, 96),
                                 ori_shape=(80, 96)))
    with torch.no_grad():
        inputs = model.data_preprocessor({'inputs': [data['inputs']]})['inputs']
        expected = torch.softmax(model(inputs, mode='tensor'), dim=1)[0].numpy()
    for result in results:
        np.testing.assert_allclose(result['pred_scores'], expected, rtol=1e-4, atol=1e-6)
        assert result['pred_label'] == int(expected.argmax())
        assert result['pred_class'] == f"c{result['pred_label']}"
    assert all(osp.isfile(tmp_path / f'vis{i}' / 'x.png') for i in range(3))
