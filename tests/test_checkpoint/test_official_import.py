"""Import of the authors' checkpoints, checked against logits and masks that the
release's own code produced (tests/data/official_tiny/README.md)."""
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint
from mmpretrain.registry import MODELS

from mmcnv2.analysis import paper_complexity
from mmcnv2.checkpoint import OfficialCheckpointError, import_official

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA = osp.join(ROOT, 'tests', 'data', 'official_tiny')


@pytest.fixture(scope='module')
def expected():
    return torch.load(osp.join(DATA, 'expected.pth'), weights_only=True)


def official_name(name):
    m = re.match(r'stages\.(\d+)\.layers\.(\d+)\.(conv1|sfr)$', name)
    block, layer, part = int(m.group(1)) + 1, int(m.group(2)) + 1, m.group(3)
    part = 'conv_1' if part == 'conv1' else 'sfr'
    return f'features.denseblock_{block}.denselayer_{layer}.{part}._mask'


def assert_masks_equal(model, official_masks):
    layers = model.backbone.sparse_layers()
    assert len(layers) == len(official_masks)
    for name, layer in layers:
        ref = official_masks[official_name(name)]
        assert torch.equal(layer.mask, ref[:, :, 0, 0] != 0), name


def logits(model, x):
    with torch.no_grad():
        return model.eval()(x, mode='tensor')


def close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_final_training_checkpoint(expected):
    r = import_official(osp.join(DATA, 'official_final_training.pth'))
    model = r['model']
    assert r['meta']['mmcnv2']['form'] == 'training'
    assert r['meta']['mmcnv2']['min_stage'] == 3
    assert_masks_equal(model, expected['masks_final'])
    close(logits(model, expected['x']), expected['logits_final'])
    model.backbone.switch_to_deploy()
    close(logits(model, expected['x']), expected['logits_converted'])


def test_flops_and_params_equal_the_releases_own_count(expected):
    """The fixture holds what the release's measure_model counted for the tiny model, in
    training and converted form: the paper's count here gives the same numbers."""
    model = import_official(osp.join(DATA, 'official_final_training.pth'))['model'].eval()

    def count():
        return paper_complexity(model, tuple(expected['x'].shape[1:]),
                                lambda m, x: m(x, mode='tensor'))

    assert count() == (pytest.approx(expected['flops_training'], rel=1e-9),
                       pytest.approx(expected['params_training'], rel=1e-9))
    model.backbone.switch_to_deploy()
    assert count() == (pytest.approx(expected['flops_converted'], rel=1e-9),
                       pytest.approx(expected['params_converted'], rel=1e-9))


def test_converted_release_imports_into_deploy_form(expected):
    r = import_official(osp.join(DATA, 'official_converted.pth'))
    model = r['model']
    assert r['meta']['mmcnv2']['form'] == 'deploy'
    assert all(m.deploy and m.index.dtype == torch.long for _, m in model.backbone.sparse_layers())
    close(logits(model, expected['x']), expected['logits_converted'])


def test_mid_schedule_checkpoint_continues_like_the_release(expected):
    r = import_official(osp.join(DATA, 'official_mid.pth'), source='model')
    model = r['model']
    assert r['meta']['mmcnv2']['entry'] == 'state_dict'
    assert {int(m.stage) for _, m in model.backbone.sparse_layers()} == {1}
    close(logits(model, expected['x']), expected['logits_mid'])
    for _, m in model.backbone.sparse_layers():
        m.sparsify(0.4)
    assert_masks_equal(model, expected['masks_stage2'])
    for _, m in model.backbone.sparse_layers():
        m.sparsify(0.5)
    assert_masks_equal(model, expected['masks_final'])
    close(logits(model, expected['x']), expected['logits_final'])


def test_ema_weights_are_preferred(expected):
    r = import_official(osp.join(DATA, 'official_mid.pth'))
    assert r['meta']['mmcnv2']['entry'] == 'state_dict_ema'
    close(logits(r['model'], expected['x']), expected['logits_mid_ema'])


def test_cli_writes_a_checkpoint_mmpretrain_loads(expected, tmp_path):
    dst = str(tmp_path / 'imported.pth')
    proc = subprocess.run([sys.executable, 'tools/import_official.py',
                           osp.join(DATA, 'official_converted.pth'), dst],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert 'deploy form' in proc.stdout
    meta = torch.load(dst, weights_only=True)['meta']['mmcnv2']
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(meta['model'])
    load_checkpoint(model, dst, strict=True)
    close(logits(model, expected['x']), expected['logits_converted'])


def test_corrupt_file_gives_a_clear_error(tmp_path):
    bad = tmp_path / 'corrupt.pth'
    bad.write_bytes(b'\x00not a checkpoint' * 10)
    with pytest.raises(OfficialCheckpointError, match='weights_only=True'):
        import_official(str(bad))
    proc = subprocess.run([sys.executable, 'tools/import_official.py', str(bad),
                           str(tmp_path / 'out.pth')], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0
    assert proc.stderr.startswith('error:') and 'Traceback' not in proc.stderr


class Payload:
    pass


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / 'foreign.pth'
    torch.save({'state_dict': Payload()}, path)
    with pytest.raises(OfficialCheckpointError, match='weights_only=True'):
        import_official(str(path))


def test_foreign_and_partial_checkpoints_are_errors(tmp_path):
    path = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(1)}, path)
    with pytest.raises(OfficialCheckpointError, match='not an official CondenseNetV2'):
        import_official(str(path))
    sd = torch.load(osp.join(DATA, 'official_converted.pth'), weights_only=True)
    sd.pop('features.denseblock_5.denselayer_2.conv_2.conv.weight')
    path = tmp_path / 'partial.pth'
    torch.save(sd, path)
    with pytest.raises(OfficialCheckpointError, match='missing'):
        import_official(str(path))
