"""Exported files checked across runtimes and scored on data: a whole detector in
OpenVINO against ONNX Runtime, top-1 of a classifier and COCO mAP of a whole detector,
latency, and float32 against int8 side by side (``tools/quantize_onnx.py``)."""
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from ..analysis.timing import time_forward
from .detector_onnx import INPUT_NAMES, detect_with_onnx, matched_fraction
from .quantize import build_split, feeds_for, input_layout, preprocessed_batches
from .runner import load_config
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


def classifier_top1(onnx_file: str, config: str, split: str = 'test',
                    num_images: Optional[int] = None, runtime: str = 'onnxruntime',
                    cfg_options: Optional[dict] = None) -> float:
    """Top-1 accuracy (%) of an exported classifier on the config's ``split``, its images
    through the config's test pipeline and data preprocessor, in batches of 32.

    Raises:
        ValueError: when the file is not a classifier (one input, ``(N, classes)`` logits).
    """
    cfg = load_config(config, cfg_options)
    session = open_session(onnx_file, runtime)
    layout = input_layout(onnx_file)
    if layout[0] != ['inputs'] or len(session.output_names) != 1:
        raise ValueError(f'{onnx_file} is not an exported classifier (one input, one output '
                         f'of logits): inputs {layout[0]}, outputs {session.output_names}')
    correct = total = 0
    for x, samples in preprocessed_batches(cfg, split, num_images, batch_size=32):
        logits = session.run(feeds_for(onnx_file, x, samples, layout))[0]
        labels = np.array([int(s.gt_label[0]) for s in samples])
        correct += int((logits.argmax(1) == labels).sum())
        total += len(labels)
    return 100.0 * correct / total


def detector_coco_map(onnx_file: str, config: str, split: str = 'val',
                      cfg_options: Optional[dict] = None) -> Dict[str, float]:
    """COCO bbox mAP of an exported whole detector on the config's ``split``: its images
    through :func:`~mmcnv2.apis.detector_onnx.detect_with_onnx` (onnxruntime), scored by
    the config's evaluator (mmdet's ``CocoMetric``) against the split's annotations.

    Returns:
        dict: ``bbox_mAP``, ``bbox_mAP_50``, ``bbox_mAP_75`` (0-1), as mmdet's test prints them.
    """
    from mmengine.registry import METRICS, DefaultScope

    cfg = load_config(config, cfg_options)
    dataset, _ = build_split(cfg, split)
    images = [dataset.get_data_info(i) for i in range(len(dataset))]
    results = detect_with_onnx(onnx_file, config, [d['img_path'] for d in images], cfg_options)
    evaluator = cfg[f"{'test' if split == 'test' else 'val'}_evaluator"]
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        metric = METRICS.build(evaluator)
    metric.dataset_meta = dataset.metainfo
    samples = [dict(img_id=d['img_id'], ori_shape=(d['height'], d['width']),
                    pred_instances={k: torch.from_numpy(v) for k, v in r.items()})
               for d, r in zip(images, results)]
    metric.process({}, samples)
    scores = metric.evaluate(len(samples))
    return {k.split('/')[-1]: float(scores[k]) for k in scores
            if k.split('/')[-1] in ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75')}


def onnx_latency(onnx_file: str, runtime: str = 'onnxruntime', threads: int = 1,
                 budget_s: float = 2.0):
    """Latency (:class:`~mmcnv2.analysis.timing.Timing`, ms) of one run of an exported file
    at batch 1 (a whole detector: its own batch) on a random input."""

    names, dims = input_layout(onnx_file)
    rng = np.random.default_rng(0)
    shape = [1 if d is None else d for d in dims]
    if names == ['inputs']:
        feeds = dict(inputs=rng.standard_normal(shape, np.float32))
    else:
        feeds = dict(inputs=rng.standard_normal(shape, np.float32),
                     img_shape=np.array([shape[2:]] * shape[0], np.int64),
                     scale_factor=np.ones((shape[0], 2), np.float32))
    session = open_session(onnx_file, runtime, threads)
    return time_forward(lambda: session.run(feeds), warmup=3, min_runs=5, max_runs=50,
                        budget_s=budget_s)


def compare_precisions(config: str, files: Dict[str, str], runtime: str = 'onnxruntime',
                       threads: int = 1, budget_s: float = 2.0,
                       cfg_options: Optional[dict] = None) -> List[dict]:
    """Accuracy and speed of exported files of one model side by side (e.g. fp32 and int8).

    A classifier is scored by top-1 on its test split (:func:`classifier_top1`), a whole
    detector by COCO bbox mAP on its val split (:func:`detector_coco_map`, onnxruntime);
    each is timed in ``runtime`` at batch 1 with ``threads`` threads (:func:`onnx_latency`).

    Args:
        config (str): The config the files were exported from.
        files (dict): Label (e.g. ``'fp32'``) -> ONNX file.

    Returns:
        list[dict]: Per file: ``label``, ``file``, the metrics (``top1`` or
        ``bbox_mAP``, ``bbox_mAP_50``, ``bbox_mAP_75``), ``ms`` (median) and ``timing``.
    """
    rows = []
    for label, path in files.items():
        if input_layout(path)[0] == ['inputs']:
            metrics = dict(top1=classifier_top1(path, config, cfg_options=cfg_options))
        else:
            metrics = detector_coco_map(path, config, cfg_options=cfg_options)
        timing = onnx_latency(path, runtime, threads, budget_s)
        rows.append(dict(label=label, file=path, **metrics, ms=timing.median, timing=timing))
    return rows
