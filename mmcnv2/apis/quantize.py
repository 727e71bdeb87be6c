"""INT8 static post-training quantization of exported files (``tools/quantize_onnx.py``).

:func:`calibration_feeds` draws images of a config's dataset through that
config's own test pipeline and data preprocessor (the training images by
default, as the model sees them at test time) and shapes them as the ONNX
file's inputs; :func:`quantize_onnx` calibrates and writes a QDQ graph with
onnxruntime's quantization tools (int8 activations, per-channel int8
weights).
"""
import logging
import os
import os.path as osp
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .detector_onnx import INPUT_NAMES as DETECTOR_INPUTS
from .runner import load_config

#: Splits of a config that calibration and evaluation can draw from.
SPLITS = ('train', 'val', 'test')

#: Node types quantized by default. The other nodes (the pre-activation BatchNorms, SFR's
#: channel gathers, concatenations) stay float: quantized too, they gain little, and
#: OpenVINO 2026.4 computes such a graph wrongly (logits' cosine 0.87 to ORT's, measured on
#: the digits CondenseNetV2), while with these types both runtimes agree to 0.9999.
QUANTIZED_OPS = ('Conv', 'Gemm', 'MatMul')

#: Activation types of the quantized graph: ``'int8'`` (S8S8, the default: with int8
#: weights, what both runtimes run everywhere) or ``'uint8'`` (U8S8, ONNX Runtime's
#: recommendation for x86 with AVX2 / AVX512-VNNI; OpenVINO runs it too).
ACTIVATION_TYPES = ('int8', 'uint8')


def build_split(cfg, split: str):
    """The dataset of ``split`` of ``cfg`` with the config's *test* pipeline, and the
    model's data preprocessor (both built in the config's scope)."""
    from mmengine.registry import DATASETS, MODELS, DefaultScope

    if split not in SPLITS:
        raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
    dataset_cfg = cfg[f'{split}_dataloader'].dataset.copy()
    dataset_cfg.pipeline = cfg.test_dataloader.dataset.pipeline
    preprocessor = cfg.model.get('data_preprocessor')
    if preprocessor is None:  # mmpretrain: the runner merges the top-level one into the model
        preprocessor = dict(type='ClsDataPreprocessor', **cfg.get('data_preprocessor', {}))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return DATASETS.build(dataset_cfg), MODELS.build(preprocessor)


def preprocessed_batches(cfg, split: str, num_images: Optional[int] = None,
                         batch_size: int = 8) -> Iterator[Tuple[np.ndarray, list]]:
    """``(inputs, data_samples)`` of the first ``num_images`` (all if None) images of
    ``split``, as the config's test pipeline and data preprocessor give them to the model:
    ``inputs`` ``(B, 3, H, W)`` float32 (a detector's padded to the batch's largest size)."""
    dataset, preprocessor = build_split(cfg, split)
    total = len(dataset) if num_images is None else min(num_images, len(dataset))
    for start in range(0, total, batch_size):
        packed = [dataset[i] for i in range(start, min(start + batch_size, total))]
        data = preprocessor(dict(inputs=[p['inputs'] for p in packed],
                                 data_samples=[p['data_samples'] for p in packed]), False)
        yield data['inputs'].numpy().astype(np.float32), data['data_samples']


def input_layout(onnx_file: str) -> Tuple[List[str], list]:
    """The names of an ONNX file's inputs and the shape of the first (``None`` for a
    dynamic axis)."""
    import onnx

    graph = onnx.load(onnx_file, load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    dims = [d.dim_value if d.HasField('dim_value') else None
            for d in inputs[0].type.tensor_type.shape.dim]
    return [i.name for i in inputs], dims


def feeds_for(onnx_file: str, inputs: np.ndarray, data_samples: list,
              layout: Optional[Tuple[List[str], list]] = None) -> Dict[str, np.ndarray]:
    """The input dict of an exported file for one preprocessed batch.

    A classifier or backbone (one input ``inputs``) takes the batch as it is; a
    whole detector (``inputs``, ``img_shape``, ``scale_factor``) gets it padded
    with zeros to its input size and batch, with each image's resized shape and
    scale.

    Raises:
        ValueError: when the images do not fit the file's input size.
    """
    names, dims = layout or input_layout(onnx_file)
    if names == ['inputs']:
        if any(d is not None and d != s for d, s in zip(dims[1:], inputs.shape[1:])):
            raise ValueError(f'{onnx_file} takes inputs of shape {dims}, the config\'s test '
                             f'pipeline gives {list(inputs.shape)}')
        return dict(inputs=inputs)
    if tuple(names) != DETECTOR_INPUTS:
        raise ValueError(f'{onnx_file}: inputs {names} are neither a classifier\'s or '
                         f'backbone\'s [inputs] nor a whole detector\'s {list(DETECTOR_INPUTS)}')
    batch, _, height, width = dims
    if len(inputs) > batch or inputs.shape[2] > height or inputs.shape[3] > width:
        raise ValueError(f'{onnx_file} takes {batch} images of at most {height} x {width}; '
                         f'the batch is {list(inputs.shape)}')
    padded = np.zeros((batch, 3, height, width), np.float32)
    padded[:len(inputs), :, :inputs.shape[2], :inputs.shape[3]] = inputs
    metas = [s.metainfo for s in data_samples]
    rest = batch - len(inputs)
    img_shape = np.array([m['img_shape'] for m in metas] + [(height, width)] * rest, np.int64)
    scale = np.array([m['scale_factor'] for m in metas] + [(1.0, 1.0)] * rest, np.float32)
    return dict(inputs=padded, img_shape=img_shape, scale_factor=scale)


def calibration_feeds(config: str, onnx_file: str, num_images: int = 64, split: str = 'train',
                      cfg_options: Optional[dict] = None) -> List[Dict[str, np.ndarray]]:
    """Calibration inputs of an exported file: ``num_images`` images of the config's
    ``split`` through its test pipeline and data preprocessor.

    Args:
        config (str): The config the file was exported from.
        onnx_file (str): The exported file (classifier, backbone or whole detector).
        num_images (int): Images to draw (the first of the split).
        split (str): ``'train'`` (default), ``'val'`` or ``'test'``.
        cfg_options (dict, optional): Overrides for the config.

    Returns:
        list[dict]: Input dicts of the file, one per batch (a detector's batch
        is the file's; others take 8 images at a time).

    Raises:
        ValueError: on a bad ``num_images`` or ``split``, or images that do not fit.
    """
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
        raise ValueError(f'num_images must be an int >= 1, got {num_images!r}')
    cfg = load_config(config, cfg_options)
    layout = input_layout(onnx_file)
    batch = layout[1][0] if layout[0] != ['inputs'] else 8
    return [feeds_for(onnx_file, x, samples, layout)
            for x, samples in preprocessed_batches(cfg, split, num_images, batch)]


def quantize_onnx(onnx_in: str, onnx_out: str, calibration: Sequence[Dict[str, np.ndarray]],
                  per_channel: bool = True, op_types: Sequence[str] = QUANTIZED_OPS,
                  preprocess: bool = True, activations: str = 'int8') -> dict:
    """Static INT8 quantization of an ONNX file, calibrated on ``calibration`` (min-max).

    The output is a QDQ graph (``QuantizeLinear``/``DequantizeLinear`` around
    the quantized nodes: int8 (or uint8) activations, int8 weights per output channel),
    which ONNX Runtime and OpenVINO run with int8 kernels. With
    ``preprocess``, onnxruntime's ``quant_pre_process`` (shape inference,
    graph optimisation) runs first.

    Args:
        onnx_in (str): The float32 file.
        onnx_out (str): The file to write (its folder is created).
        calibration (Sequence[dict]): Input dicts of ``onnx_in``
            (:func:`calibration_feeds`).
        per_channel (bool): Per-output-channel weight scales.
        op_types (Sequence[str]): Node types to quantize (:data:`QUANTIZED_OPS`).
        preprocess (bool): Run ``quant_pre_process`` first.
        activations (str): The activations' type, one of :data:`ACTIVATION_TYPES`.

    Returns:
        dict: ``out``, ``num_quantize`` and ``num_dequantize`` (node counts).

    Raises:
        FileNotFoundError: when ``onnx_in`` does not exist.
        ValueError: with no calibration data, feeds that do not name the
            file's inputs, ``onnx_out`` equal to ``onnx_in`` or an unknown
            ``activations``.
    """
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if activations not in ACTIVATION_TYPES:
        raise ValueError(f'activations must be one of {ACTIVATION_TYPES}, got {activations!r}')
    if not osp.isfile(onnx_in):
        raise FileNotFoundError(f'ONNX file not found: {onnx_in}')
    if osp.abspath(onnx_in) == osp.abspath(onnx_out):
        raise ValueError(f'onnx_out must differ from onnx_in ({onnx_in})')
    calibration = list(calibration)
    if not calibration:
        raise ValueError('calibration needs at least one input dict')
    names = input_layout(onnx_in)[0]
    for feeds in calibration:
        if sorted(feeds) != sorted(names):
            raise ValueError(f'calibration feeds name {sorted(feeds)}, {onnx_in} takes '
                             f'{sorted(names)}')

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter(calibration)

        def get_next(self):
            return next(self.feeds, None)

    os.makedirs(osp.dirname(osp.abspath(onnx_out)), exist_ok=True)
    source = onnx_in
    logger = logging.getLogger()  # the quantizer warns per weight at the root logger
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        if preprocess:
            source = onnx_out + '.pre.onnx'
            quant_pre_process(onnx_in, source)
        quantize_static(source, onnx_out, Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel,
                        activation_type=dict(int8=QuantType.QInt8,
                                             uint8=QuantType.QUInt8)[activations],
                        weight_type=QuantType.QInt8, op_types_to_quantize=list(op_types))
    finally:
        logger.setLevel(level)
        if source != onnx_in and osp.exists(source):
            os.remove(source)
    nodes = [n.op_type for n in onnx.load(onnx_out).graph.node]
    return dict(out=onnx_out, num_quantize=nodes.count('QuantizeLinear'),
                num_dequantize=nodes.count('DequantizeLinear'))
