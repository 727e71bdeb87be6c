"""OpenVINO as a second CPU runtime of the exported files: classifiers and backbones equal
PyTorch in it (relative 1e-4, float32), a whole RetinaNet gives onnxruntime's boxes."""
import os.path as osp

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from mmcnv2.apis.detector_onnx import export_detector_onnx
from mmcnv2.apis.export import verify_onnx
from mmcnv2.apis.onnx_eval import detector_runtime_match
from mmcnv2.apis.runtimes import RUNTIMES, open_session
from tests.test_tools.test_export_onnx import TINY_ARCHS, export_dynamo, tiny_deploy_backbone
from tests.tool_utils import tool
from tests.utils import trained_checkpoint

pytest.importorskip('openvino')
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def scale_graph(path, scale=1000.0):
    """An ONNX file computing ``scale * inputs`` with a dynamic ``(N, 3, H, W)`` input."""
    graph = helper.make_graph(
        [helper.make_node('Mul', ['inputs', 'scale'], ['out'])], 'g',
        [helper.make_tensor_value_info('inputs', TensorProto.FLOAT, ['N', 3, 'H', 'W'])],
        [helper.make_tensor_value_info('out', TensorProto.FLOAT, ['N', 3, 'H', 'W'])],
        [numpy_helper.from_array(np.array(scale, dtype=np.float32), 'scale')])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)]), path)
    return str(path)


def test_cli_classifier_checked_in_both_runtimes(tmp_path, capsys):
    """The digits demo's CondenseNetV2 (training form, fully sparsified): the tool checks
    the file in onnxruntime and OpenVINO, batch 1 and 4, default and 1 thread."""
    config = 'configs/demo/cnv2_digits.py'
    ckpt = trained_checkpoint(config, tmp_path / 'digits.pth')
    out = tmp_path / 'digits.onnx'
    assert tool('export_onnx.py', osp.join(ROOT, config), ckpt, out, '--shape', 32, 32,
                '--runtime', 'onnxruntime', 'openvino') is None
    lines = capsys.readouterr().out
    for runtime in RUNTIMES:
        assert f'{runtime} vs PyTorch (batch 1 and 4' in lines
    # and at a batch the check did not use, on 2 threads
    session = open_session(str(out), 'openvino', threads=2)
    x = np.random.default_rng(0).standard_normal((7, 3, 32, 32), np.float32)
    ort = open_session(str(out), 'onnxruntime', threads=1).run({'inputs': x})[0]
    got = session.run({'inputs': x})[0]
    assert got.shape == (7, 10) and np.abs(got - ort).max() <= 1e-4 * np.abs(ort).max()


@pytest.mark.parametrize('family', ['cnv2', 'sfr_shufflenetv2'])
def test_backbone_in_openvino_equals_pytorch(tmp_path, family):
    """Tiny deploy-form backbones (CondenseNetV2, SFR-ShuffleNetV2): OpenVINO's feature
    maps equal PyTorch's at batch 1 and 16, OpenVINO's default threading and 1 thread."""
    model = tiny_deploy_backbone(*TINY_ARCHS[family])
    path = str(tmp_path / f'{family}.onnx')
    export_dynamo(model, (torch.randn(1, 3, 32, 32), ), path, ['inputs'], (0, ))
    rel = verify_onnx(path, model, [(1, 3, 32, 32), (16, 3, 32, 32)], runtime='openvino')
    assert 0 < rel <= 1e-4  # float32: rounding only (bf16 would be ~1e-2)


def test_verify_onnx_in_openvino_names_the_failure(tmp_path):
    path = scale_graph(tmp_path / 'mul.onnx')
    assert verify_onnx(path, lambda x: x * 1000, [(2, 3, 5, 7)], runtime='openvino') < 1e-6
    with pytest.raises(RuntimeError, match=r'openvino \(1 intra-op threads\) differs from '
                       r'PyTorch on input \[2, 3, 5, 7\], output out'):
        verify_onnx(path, lambda x: x * 1010, [(2, 3, 5, 7)], intra_op_threads=(1, ),
                    runtime='openvino')
    with pytest.raises(ValueError, match=r"runtime must be among \('onnxruntime', "
                       r"'openvino'\), got \['tensorrt'\]"):
        verify_onnx(path, lambda x: x, [(1, 3, 5, 5)], runtime='tensorrt')


def test_open_session_refuses_bad_arguments(tmp_path):
    path = scale_graph(tmp_path / 'mul.onnx')
    for runtime in RUNTIMES:
        session = open_session(path, runtime, threads=1)
        assert session.runtime == runtime
        assert session.input_names == ['inputs'] and session.output_names == ['out']
    with pytest.raises(ValueError, match='runtime must be among'):
        open_session(path, 'ort')
    with pytest.raises(ValueError, match=r'threads must be an int >= 0'):
        open_session(path, 'openvino', threads=-1)


def test_whole_retinanet_in_openvino_gives_ort_boxes(tmp_path):
    """The demo RetinaNet (random weights, class bias 0 so that hundreds of boxes reach NMS),
    exported whole at batch 2: OpenVINO keeps onnxruntime's boxes (IoU >= 0.99, scores
    within 1e-3), NonMaxSuppression included. Measured: 600 of 600 matched at 416 x 416."""
    config = osp.join(ROOT, 'configs/demo/retinanet_cnv2_trees.py')
    ckpt = trained_checkpoint(config, tmp_path / 'det.pth')
    state = torch.load(ckpt, weights_only=True)
    state['state_dict']['bbox_head.retina_cls.bias'].zero_()
    torch.save(state, ckpt)
    out = str(tmp_path / 'det.onnx')
    export_detector_onnx(config, ckpt, out, shape=(192, 256), batch_size=2)
    for threads in (0, 1):
        matched, n_ort, n_ov = detector_runtime_match(out, 'openvino', threads=threads)
        assert n_ort > 100 and n_ov == n_ort and matched == 1.0
    with pytest.raises(ValueError, match='is not a whole detector'):
        detector_runtime_match(scale_graph(tmp_path / 'mul.onnx'), 'openvino')
