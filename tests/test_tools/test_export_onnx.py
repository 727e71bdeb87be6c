"""ONNX export of the deploy forms: onnxruntime agrees with PyTorch (relative 1e-4) at
several batch sizes on 2 threads, and no graph holds a scatter (onnxruntime's CPU scatters
lose updates to repeated indices when they run on several threads)."""
import os
import os.path as osp
import subprocess
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from mmcnv2.apis.deploy import convert_checkpoint
from mmcnv2.apis.export import export_form, load_deploy_model, export_onnx, verify_onnx
from mmcnv2.models import CondenseNetV2, SFRShuffleNetV2, SFRShuffleNetV2Plus
from mmcnv2.models.deploy import sparse_layers, switch_model_to_deploy
from mmcnv2.models.layers import SparseFeatureReactivation
from tests.utils import randomize_bn, trained_checkpoint
from tests.runner_utils import TINY_ARCH

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCATTERS = {'Scatter', 'ScatterND', 'ScatterElements', 'TensorScatter'}


def op_types(path):
    """Every node type of an ONNX file, subgraphs included."""
    def walk(graph):
        for node in graph.node:
            yield node.op_type
            for attr in node.attribute:
                for sub in ([attr.g] if attr.HasField('g') else []) + list(attr.graphs):
                    yield from walk(sub)
    return set(walk(onnx.load(path, load_external_data=False).graph))


def assert_ort_equal(path, reference, inputs, repeats=1, rtol=1e-4):
    """onnxruntime with 2 intra-op threads (set explicitly, whatever the machine's cores)
    matches ``reference`` on every input dict, ``repeats`` times each, relative to each
    output's largest magnitude."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    for feeds in inputs:
        with torch.no_grad():
            ref = reference(*feeds.values())
        refs = [r.numpy() for r in (ref if isinstance(ref, (tuple, list)) else [ref])]
        for _ in range(repeats):
            outs = session.run(None, {k: v.numpy() for k, v in feeds.items()})
            assert len(outs) == len(refs)
            for o, r in zip(outs, refs):
                assert o.shape == r.shape
                assert np.abs(o - r).max() <= rtol * np.abs(r).max(), \
                    (list(next(iter(feeds.values())).shape), np.abs(o - r).max(), np.abs(r).max())


def check_round_trip(config, ckpt, onnx_path, shape, backbone_only=False):
    """No scatter in the graph; onnxruntime on 2 threads equals the PyTorch deploy form at
    batch 1 and 8 (dynamic batch)."""
    assert not op_types(onnx_path) & SCATTERS
    model, _ = load_deploy_model(osp.join(ROOT, config), ckpt)
    reference = model.backbone if backbone_only else (lambda x: model(x, mode='tensor'))
    assert_ort_equal(onnx_path, reference,
                     [{'inputs': torch.randn(b, 3, *shape)} for b in (1, 8)])


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
    assert r['max_rel_diff'] <= 1e-4 and r['output_names'] == ['logits']
    assert r['files'] == [out] and not any(f.endswith('.data') for f in os.listdir(tmp_path))
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
    out = str(tmp_path / 'new' / 'folder' / 'sfr.onnx')  # the tool creates the folders
    proc = subprocess.run([sys.executable, 'tools/export_onnx.py', config, ckpt, out,
                           '--shape', '96', '96'], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f'wrote {out}:' in proc.stdout and 'max relative difference' in proc.stdout
    assert os.listdir(osp.dirname(out)) == ['sfr.onnx']  # self-contained: no .onnx.data
    check_round_trip(config, ckpt, out, (96, 96))


def export_dynamo(module, args, path, names, dynamic_axes):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(module, args, path, input_names=names, dynamo=True,
                          dynamic_shapes=[{a: torch.export.Dim(f'{n}_{a}') for a in dynamic_axes}
                                          for n in names], external_data=False)


def test_sfr_with_repeated_targets_is_thread_safe(tmp_path):
    """A deploy-form SFR whose 64 increments all go to 4 channels (16 each): its graph has no
    scatter, and onnxruntime on 2 threads adds every increment. Exported as a scatter-add
    this failed 4 of 5 runs at batch 16, 64x64 (updates lost at random)."""
    sfr = SparseFeatureReactivation(16, 64, sparse_factor=8, groups=8, deploy=True)
    state = randomize_bn(sfr).state_dict()
    state['index'] = torch.arange(64) % 4
    sfr.load_state_dict(state)  # the gather layout is derived from the loaded index
    sfr.eval()
    path = str(tmp_path / 'sfr.onnx')
    export_dynamo(sfr, (torch.randn(1, 16, 8, 8), torch.randn(1, 64, 8, 8)), path,
                  ['new', 'old'], (0, 2, 3))
    assert not op_types(path) & SCATTERS
    inputs = [dict(new=torch.randn(n, 16, s, s), old=torch.randn(n, 64, s, s))
              for n, s in ((1, 8), (16, 64), (3, 33))]
    assert_ort_equal(path, sfr, inputs, repeats=5)
    # the reference is index_add: each of channels 0-3 gets 16 increments, the rest none
    new, old = inputs[0]['new'], inputs[0]['old']
    with torch.no_grad():
        inc = sfr._increment(new)
        assert torch.allclose(sfr(new, old)[:, 4:], old[:, 4:])
        assert torch.allclose(sfr(new, old)[:, :4] - old[:, :4],
                              inc.view(1, 16, 4, 8, 8).sum(1), atol=1e-5)


def tiny_deploy_backbone(backbone_type, arch):
    model = randomize_bn(backbone_type(arch, out_indices=(0, 1)))
    for _, m in sparse_layers(model):
        m.sparsify(1.0)
    switch_model_to_deploy(model)
    return model.eval()


_HS = dict(type='HSwish')
TINY_ARCHS = {
    'cnv2': (CondenseNetV2, TINY_ARCH),
    'sfr_shufflenetv2': (SFRShuffleNetV2, dict(
        widths=(48, 96), units=(2, 3), kinds=('3x3', ) * 5, acts=(dict(type='ReLU'), ) * 2,
        se=(False, False))),
    'sfr_shufflenetv2plus': (SFRShuffleNetV2Plus, dict(
        widths=(32, 64), units=(2, 3), kinds=('3x3', 'xception', '5x5', '7x7', '3x3'),
        acts=(dict(type='ReLU'), _HS), se=(False, True))),
}


@pytest.mark.parametrize('family', sorted(TINY_ARCHS))
def test_every_family_exports_without_scatter(tmp_path, family):
    """Tiny backbones of each family with SFR: no scatter node in the graph, and
    onnxruntime on 2 threads equals the eager deploy form at batch 1 and 16."""
    model = tiny_deploy_backbone(*TINY_ARCHS[family])
    path = str(tmp_path / f'{family}.onnx')
    export_dynamo(model, (torch.randn(1, 3, 32, 32), ), path, ['inputs'], (0, ))
    assert not op_types(path) & SCATTERS
    assert_ort_equal(path, model, [{'inputs': torch.randn(b, 3, 32, 32)} for b in (1, 16)],
                     repeats=2)


def test_export_form_runs_group_convolutions_as_depthwise(tmp_path):
    """What tools/export_onnx.py traces for CondenseNetV2 (export_form): its 3x3 group
    convolutions are depthwise ones, its pools stride-2 depthwise convolutions (ONNX
    Runtime runs both far faster than few-channel groups or AveragePool), no scatter; and
    onnxruntime on 2 threads equals the eager deploy form at batch 1 and 16."""
    model = tiny_deploy_backbone(*TINY_ARCHS['cnv2'])
    path = str(tmp_path / 'cnv2_export_form.onnx')
    fused = export_form(model)  # inference-only: its forward takes *args, so wrap it
    export_dynamo(torch.nn.Sequential(fused), (torch.randn(1, 3, 32, 32), ), path, ['inputs'],
                  (0, ))
    graph = onnx.load(path).graph
    weights = {t.name: t.dims for t in graph.initializer}
    grouped = [(n.name, weights[n.input[1]]) for n in graph.node if n.op_type == 'Conv'
               and any(a.name == 'group' and a.i > 1 for a in n.attribute)]
    spatial = [(name, dims) for name, dims in grouped if dims[2:] != [1, 1]]
    assert spatial and all(dims[1] == 1 for _, dims in spatial), spatial
    assert not {n.op_type for n in graph.node} & (SCATTERS | {'AveragePool'})
    assert_ort_equal(path, model, [{'inputs': torch.randn(b, 3, 32, 32)} for b in (1, 16)],
                     repeats=2)


def test_verify_onnx_is_relative_and_names_the_failure(tmp_path):
    """A graph computing 1000 x: rounding-sized differences of large outputs pass (an
    absolute 1e-4 would fail them), a 1% error fails with the shape and threads named."""
    from onnx import TensorProto, helper, numpy_helper
    scale = numpy_helper.from_array(np.array(1000.0, dtype=np.float32), 'scale')
    graph = helper.make_graph(
        [helper.make_node('Mul', ['inputs', 'scale'], ['out'])], 'g',
        [helper.make_tensor_value_info('inputs', TensorProto.FLOAT, ['N', 3, 'H', 'W'])],
        [helper.make_tensor_value_info('out', TensorProto.FLOAT, ['N', 3, 'H', 'W'])], [scale])
    path = str(tmp_path / 'mul.onnx')
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)]), path)
    shapes = [(1, 3, 8, 8), (4, 3, 5, 7)]
    rel = verify_onnx(path, lambda x: x * 1000 + 0.01, shapes)
    assert 0 < rel < 1e-4
    with pytest.raises(RuntimeError, match=r'\(1 intra-op threads\) differs from PyTorch on '
                       r'input \[4, 3, 5, 7\], output out: .* > rtol=0.0001'):
        verify_onnx(path, lambda x: x * (1000 + 10 * (x.shape[0] == 4)), shapes,
                    intra_op_threads=(1, ))


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
