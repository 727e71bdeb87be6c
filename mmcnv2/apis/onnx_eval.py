"""Exported files in other runtimes and their accuracy on data: whole detectors in
OpenVINO against ONNX Runtime."""
from typing import Tuple

import numpy as np

from .detector_onnx import INPUT_NAMES, matched_fraction
from .runtimes import open_session


def detector_runtime_match(onnx_file: str, runtime: str, seed: int = 0,
                           threads: int = 0) -> Tuple[float, int, int]:
    """Run a whole detector (``export_detector_onnx``) in ``runtime`` and in onnxruntime on
    one random input of its size; how many of ORT's boxes ``runtime`` gives too.

    Args:
        onnx_file (str): The exported detector.
        runtime (str): ``'openvino'`` (or ``'onnxruntime'``, which matches itself).
        seed (int): Seed of the random input.
        threads (int): Threads of ``runtime`` (0: its default).

    Returns:
        tuple: :func:`~mmcnv2.apis.detector_onnx.matched_fraction` of ORT's boxes
        in ``runtime``'s, and the two box counts (ORT's, ``runtime``'s).

    Raises:
        ValueError: when the file is not a whole detector.
    """
    reference = open_session(onnx_file, 'onnxruntime')
    if tuple(reference.input_names) != INPUT_NAMES:
        raise ValueError(f'{onnx_file} is not a whole detector of export_detector_onnx: its '
                         f'inputs are {reference.input_names}, expected {list(INPUT_NAMES)}')
    batch, _, height, width = reference.session.get_inputs()[0].shape
    rng = np.random.default_rng(seed)
    feeds = dict(inputs=rng.standard_normal((batch, 3, height, width), np.float32),
                 img_shape=np.array([(height, width)] * batch, np.int64),
                 scale_factor=np.ones((batch, 2), np.float32))
    ref = reference.run(feeds)[0]
    got = open_session(onnx_file, runtime, threads).run(feeds)[0]
    return matched_fraction(ref, got), len(ref), len(got)
