"""INT8 static quantization of exported files: a QDQ graph calibrated on the config's own
data whose logits stay close to float32's, the calibration inputs shaped as the file takes
them, and bad arguments refused."""
import os.path as osp

import numpy as np
import onnx
import pytest

from mmcnv2.apis.quantize import calibration_feeds, feeds_for, quantize_onnx
from mmcnv2.apis.runtimes import open_session
from tests.tool_utils import tool

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DIGITS = osp.join(ROOT, 'configs/demo/cnv2_digits.py')


@pytest.fixture
def digits_onnx(digits_export):
    """The digits demo's CondenseNetV2 (random weights and BN statistics, fully
    sparsified), exported at 32 x 32 (the session's one export, ``conftest.py``)."""
    return digits_export[0]


def test_cli_quantizes_and_evaluates(digits_onnx, tmp_path, capsys):
    """16 training images calibrate a QDQ graph; on the 360 test digits its logits keep a
    cosine similarity > 0.99 to float32's and the same top-1 class for >= 95% of the
    images (measured with random weights: cosine >= 0.9998, 100% agreement), in
    onnxruntime and in OpenVINO."""
    out = str(tmp_path / 'int8' / 'digits_int8.onnx')
    assert tool('quantize_onnx.py', DIGITS, digits_onnx, out, '--calib-images', 16,
                '--evaluate') is None
    printed = capsys.readouterr().out
    assert f'wrote {out}:' in printed and 'calibrated on 16 images of the train split' in printed
    rows = {line.split()[0]: line.split() for line in printed.splitlines()
            if line.startswith(('fp32 ', 'int8 '))}
    assert set(rows) == {'fp32', 'int8'} and 0 <= float(rows['int8'][1]) <= 100
    ops = [n.op_type for n in onnx.load(out).graph.node]
    assert ops.count('QuantizeLinear') > 10 and ops.count('DequantizeLinear') > 10
    x = np.concatenate([f['inputs'] for f in calibration_feeds(DIGITS, digits_onnx, 64,
                                                                split='test')])
    ref = open_session(digits_onnx).run({'inputs': x})[0]
    for runtime in ('onnxruntime', 'openvino'):
        got = open_session(out, runtime).run({'inputs': x})[0]
        cosine = (ref * got).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1)
        assert cosine.min() > 0.99, (runtime, cosine.min())
        assert (ref.argmax(1) == got.argmax(1)).mean() >= 0.95, runtime


def test_uint8_activations(digits_onnx, tmp_path):
    """``activations='uint8'`` (U8S8): every activation's QuantizeLinear has a uint8 zero
    point, the weights stay int8 (biases int32), and the logits keep a cosine > 0.99 to
    float32's."""
    feeds = calibration_feeds(DIGITS, digits_onnx, 16)
    out = str(tmp_path / 'digits_u8.onnx')
    quantize_onnx(digits_onnx, out, feeds, activations='uint8')
    graph = onnx.load(out).graph
    zero_points = {i.name: onnx.numpy_helper.to_array(i).dtype for i in graph.initializer}
    quantized = [zero_points[n.input[2]] for n in graph.node if n.op_type == 'QuantizeLinear']
    dequantized = {zero_points[n.input[2]] for n in graph.node
                   if n.op_type == 'DequantizeLinear' and n.input[2] in zero_points}
    assert len(quantized) > 10 and set(quantized) == {np.dtype(np.uint8)}
    # activations, weights, biases
    assert dequantized == {np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.int32)}
    x = feeds[0]['inputs']
    ref = open_session(digits_onnx).run({'inputs': x})[0]
    got = open_session(out).run({'inputs': x})[0]
    cosine = (ref * got).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1)
    assert cosine.min() > 0.99, cosine.min()


def test_calibration_feeds_through_the_test_pipeline(digits_onnx):
    """The training digits as the model sees them at test time: normalised to [-1, 1],
    in batches of 8; the last batch holds the rest."""
    feeds = calibration_feeds(DIGITS, digits_onnx, 20)
    assert [f['inputs'].shape for f in feeds] == [(8, 3, 32, 32)] * 2 + [(4, 3, 32, 32)]
    x = np.concatenate([f['inputs'] for f in feeds])
    assert x.dtype == np.float32 and x.min() >= -1 and x.max() <= 1 and x.std() > 0.3


def test_detector_feeds_are_padded_to_the_file():
    """A whole detector's file takes a fixed batch and size: the images are padded with
    zeros, and each gets its resized shape and scale (padding images: the full size)."""
    from mmengine.structures import BaseDataElement

    path = '/dev/null'  # the layout is given, the file is not read
    layout = (['inputs', 'img_shape', 'scale_factor'], [2, 3, 64, 96])
    sample = BaseDataElement(metainfo=dict(img_shape=(50, 80), scale_factor=(0.5, 0.5)))
    feeds = feeds_for(path, np.ones((1, 3, 56, 80), np.float32), [sample], layout)
    assert feeds['inputs'].shape == (2, 3, 64, 96)
    assert feeds['inputs'][0, :, :56, :80].min() == 1 and feeds['inputs'][0, :, 56:].max() == 0
    assert feeds['inputs'][1].max() == 0
    assert feeds['img_shape'].tolist() == [[50, 80], [64, 96]]
    assert feeds['scale_factor'].tolist() == [[0.5, 0.5], [1, 1]]
    with pytest.raises(ValueError, match=r'takes 2 images of at most 64 x 96'):
        feeds_for(path, np.ones((1, 3, 72, 80), np.float32), [sample], layout)


def test_bad_arguments_are_refused(digits_onnx, tmp_path):
    feeds = [dict(inputs=np.zeros((1, 3, 32, 32), np.float32))]
    with pytest.raises(FileNotFoundError, match='ONNX file not found'):
        quantize_onnx(str(tmp_path / 'missing.onnx'), str(tmp_path / 'q.onnx'), feeds)
    with pytest.raises(ValueError, match='onnx_out must differ from onnx_in'):
        quantize_onnx(digits_onnx, digits_onnx, feeds)
    with pytest.raises(ValueError, match=r"activations must be one of \('int8', 'uint8'\), "
                       "got 'fp16'"):
        quantize_onnx(digits_onnx, str(tmp_path / 'q.onnx'), feeds, activations='fp16')
    with pytest.raises(ValueError, match='calibration needs at least one input dict'):
        quantize_onnx(digits_onnx, str(tmp_path / 'q.onnx'), [])
    with pytest.raises(ValueError, match=r"calibration feeds name \['x'\], .* takes \['inputs'\]"):
        quantize_onnx(digits_onnx, str(tmp_path / 'q.onnx'), [dict(x=feeds[0]['inputs'])])
    with pytest.raises(ValueError, match='num_images must be an int >= 1'):
        calibration_feeds(DIGITS, digits_onnx, 0)
    with pytest.raises(ValueError, match="split must be one of"):
        calibration_feeds(DIGITS, digits_onnx, 4, split='holdout')
    with pytest.raises(ValueError, match=r'takes inputs of shape \[None, 3, 32, 32\]'):
        feeds_for(digits_onnx, np.zeros((1, 3, 28, 28), np.float32), [])
    # the tool: one 'error: ...' line
    assert tool('quantize_onnx.py', DIGITS, str(tmp_path / 'missing.onnx'),
                str(tmp_path / 'q.onnx')).startswith('error: ')
    assert not osp.exists(tmp_path / 'q.onnx')
