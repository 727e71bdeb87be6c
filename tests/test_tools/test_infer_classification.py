"""tools/infer.py on a classification config: top-k labels and a picture per image, the
model in the form its checkpoint holds, unreadable files reported."""
import copy
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmcnv2.models import switch_model_to_deploy
from mmcnv2.models.deploy import sparse_layers
from tests.utils import randomize_bn
from tests.tool_utils import tool

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs/demo/cnv2_digits.py')
CLASSES = [f'digit {i}' for i in range(10)]


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    """Three val digits as 32x32 PNG files, a training-form and a deploy-form checkpoint of
    the digits demo's model (fully sparsified, random weights), and the model itself."""
    import mmcv
    from mmpretrain import get_model

    from mmcnv2.datasets import SklearnDigits
    folder = tmp_path_factory.mktemp('digits')
    images = folder / 'images'
    images.mkdir()
    dataset = SklearnDigits(split='test', pipeline=[])
    for i in range(3):
        mmcv.imwrite(dataset[i]['img'], str(images / f'digit{i}.png'))
    torch.manual_seed(0)
    model = get_model(Config.fromfile(CONFIG))  # with the config's data preprocessor
    for _, layer in sparse_layers(model):
        layer.sparsify(1.0)
    randomize_bn(model).eval()
    deploy = copy.deepcopy(model)
    switch_model_to_deploy(deploy)
    ckpts = {}
    for form, m in (('training', model), ('deploy', deploy)):
        ckpts[form] = str(folder / f'{form}.pth')
        torch.save({'state_dict': m.state_dict(),
                    'meta': {'dataset_meta': {'classes': CLASSES}}}, ckpts[form])
    return dict(images=str(images), checkpoints=ckpts, model=model)


def test_topk_labels_and_pictures_in_both_forms(digits, tmp_path, capsys):
    import mmcv
    results = {}
    for form, ckpt in digits['checkpoints'].items():
        out = tmp_path / form
        assert tool('infer.py', CONFIG, ckpt, digits['images'], '--out-dir', str(out),
                        '--topk', '3') is None  # returned normally
        assert '3 image(s)' in capsys.readouterr().out
        assert sorted(os.listdir(out / 'vis')) == ['digit0.png', 'digit1.png', 'digit2.png']
        results[form] = {}
        for name in ('digit0', 'digit1', 'digit2'):
            with open(out / 'preds' / f'{name}.json') as f:
                results[form][name] = json.load(f)
            # drawn enlarged from 32x32, so that the labels fit
            assert mmcv.imread(str(out / 'vis' / f'{name}.png')).shape == (256, 256, 3)
    # the reference: the model itself on the same pixels (no resize in the digits pipeline)
    model = digits['model']
    for name, pred in results['training'].items():
        img = mmcv.imread(osp.join(digits['images'], f'{name}.png'))
        x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].float()
        with torch.no_grad():
            probs = torch.softmax(model(model.data_preprocessor({'inputs': x})['inputs'],
                                        mode='tensor'), 1)[0]
        scores, labels = probs.topk(3)
        assert pred['labels'] == labels.tolist()
        np.testing.assert_allclose(pred['scores'], scores.numpy(), rtol=1e-4)
        assert pred['classes'] == [CLASSES[i] for i in pred['labels']]
        deploy = results['deploy'][name]
        assert deploy['labels'] == pred['labels']
        np.testing.assert_allclose(deploy['scores'], pred['scores'], rtol=1e-4)


def test_unreadable_file_is_reported_and_the_others_classified(digits, tmp_path, capsys):
    bad = tmp_path / 'notes.png'
    bad.write_text('not an image')
    image = osp.join(digits['images'], 'digit0.png')
    code = tool('infer.py', CONFIG, digits['checkpoints']['deploy'], str(bad), image,
                    '--out-dir', str(tmp_path / 'out'))
    assert code == ('error: 1 input file(s) could not be read as images (listed above); the '
                    'other 1 were processed')
    assert f'skipped {bad}: not an image file' in capsys.readouterr().err
    with open(tmp_path / 'out' / 'preds' / 'digit0.json') as f:
        assert len(json.load(f)['labels']) == 5  # --topk 5 by default


def test_bad_arguments_are_errors(digits, tmp_path):
    from mmcnv2.apis.inference import classify_images
    image = osp.join(digits['images'], 'digit0.png')
    with pytest.raises(ValueError, match='topk must be an int >= 1, got 0'):
        classify_images(CONFIG, digits['checkpoints']['deploy'], [image], str(tmp_path), topk=0)
    # asking for the other form than the checkpoint holds is refused, naming the option
    code = tool('infer.py', CONFIG, digits['checkpoints']['deploy'], image, '--out-dir',
                    str(tmp_path / 'o'), '--cfg-options', 'model.backbone.deploy=False')
    assert isinstance(code, str) and code.startswith('error: ')
    assert 'deploy form' in code and 'model.backbone.deploy' in code
