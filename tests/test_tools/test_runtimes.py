"""OpenVINO as a second CPU runtime of the exported files: classifiers and backbones equal
PyTorch in it (relative 1e-4, float32); a whole RetinaNet giving onnxruntime's boxes in it
is checked in test_detector_onnx.py, on that file's export."""

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from mmcnv2.apis.export import verify_onnx
from mmcnv2.apis.onnx_eval import detector_runtime_match
from mmcnv2.apis.runtimes import RUNTIMES, open_session
from tests.test_tools.test_export_onnx import TINY_ARCHS, export_dynamo, tiny_deploy_backbone

pytest.importorskip('openvino')


def scale_graph(path, scale=1000.0):
    """An ONNX file computing ``scale * inputs`` with a dynamic ``(N, 3, H, W)`` input."""
    graph = helper.make_graph(
        [helper.make_node('Mul', ['inputs', 'scale'], ['out'])], 'g',
        [helper.make_tensor_value_info('inputs', TensorProto.FLOAT, ['N', 3, 'H', 'W'])],
        [helper.make_tensor_value_info('out', TensorProto.FLOAT, ['N', 3, 'H', 'W'])],
        [numpy_helper.from_array(np.array(scale, dtype=np.float32), 'scale')])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)]), path)
    return str(path)


def test_cli_classifier_checked_in_both_runtimes(digits_export):
    """The digits demo's CondenseNetV2 (training form, fully sparsified): the tool checks
    the file in onnxruntime and OpenVINO, batch 1 and 4, default and 1 thread."""
    out, lines = digits_export
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


def test_runtime_match_refuses_what_is_not_a_whole_detector(tmp_path):
    """detector_runtime_match names a file that is not a whole detector (the match itself
    is checked in test_detector_onnx.py, on that file's export)."""
    with pytest.raises(ValueError, match='is not a whole detector'):
        detector_runtime_match(scale_graph(tmp_path / 'mul.onnx'), 'openvino')
