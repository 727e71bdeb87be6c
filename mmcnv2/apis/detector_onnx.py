"""Whole RetinaNet-style detectors in ONNX, post-processing included, and their runner.

:func:`export_detector_onnx` writes one ONNX file with the backbone, the neck,
the head, the box decoding and the NMS (ONNX ``NonMaxSuppression``) of an mmdet
single-stage anchor-based detector with sigmoid classes (RetinaNet); it returns
boxes in the original image's pixels, as mmdet's ``predict`` does.
:func:`detect_with_onnx` runs such a file in onnxruntime on image files, with the
config's own test pipeline and normalisation in front of it.
"""
import math
import os
import os.path as osp
import warnings
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torchvision

from .export import load_deploy_model, onnxruntime_session
from .runner import load_config

#: The graph's inputs and output, in order.
INPUT_NAMES = ('inputs', 'img_shape', 'scale_factor')
OUTPUT_NAMES = ('dets', )


class SingleStageDetectorWithNMS(nn.Module):
    """An mmdet single-stage detector with its test-time post-processing, traceable.

    It computes what ``RetinaHead.predict_by_feat`` computes, for a batch of
    images of one padded size: on every level the ``nms_pre`` best
    (anchor, class) scores, their boxes decoded and clipped to the resized
    image, rescaled to the original image, boxes with a side of at most
    ``min_bbox_size`` dropped, NMS per class (class offsets, as mmcv's
    ``batched_nms``), scores above ``score_thr``, the ``max_per_img`` best. The
    anchors of the padded size are constants of the module.

    Args:
        model (nn.Module): An mmdet single-stage detector whose head has an
            ``AnchorGenerator``, a ``DeltaXYWHBBoxCoder`` and sigmoid classes
            (RetinaNet), in eval mode.
        input_hw (Sequence[int]): The padded input size ``(H, W)``.

    Inputs of ``forward``: ``inputs`` ``(B, 3, H, W)`` as the model's
    data preprocessor makes them (normalised, padded with 0), ``img_shape``
    ``(B, 2)`` the resized image size ``(h, w)`` before padding, and
    ``scale_factor`` ``(B, 2)`` its ``(w, h)`` scale from the original image.
    Output: ``(K, 7)`` rows ``x1 y1 x2 y2 score label image``, by image, then
    by descending score.
    """

    def __init__(self, model: nn.Module, input_hw: Sequence[int]):
        super().__init__()
        head = getattr(model, 'bbox_head', None)
        kinds = (type(getattr(head, 'prior_generator', None)).__name__,
                 type(getattr(head, 'bbox_coder', None)).__name__,
                 getattr(head, 'use_sigmoid_cls', False))
        if kinds != ('AnchorGenerator', 'DeltaXYWHBBoxCoder', True):
            raise ValueError(
                'whole-detector export supports single-stage detectors with an '
                'AnchorGenerator, a DeltaXYWHBBoxCoder and sigmoid classes (RetinaNet); '
                f'{type(model).__name__} has {kinds[0]}, {kinds[1]}, sigmoid={kinds[2]}')
        self.model = model
        with torch.no_grad():  # the feature map sizes the backbone and neck give
            sizes = [tuple(f.shape[-2:]) for f in model.extract_feat(
                torch.zeros(1, 3, *input_hw))]
        for i, anchors in enumerate(head.prior_generator.grid_priors(sizes, device='cpu')):
            self.register_buffer(f'anchors{i}', anchors, persistent=False)
        cfg = model.test_cfg
        self.nms_pre = cfg.get('nms_pre', -1)
        self.score_thr = cfg.get('score_thr', 0)
        self.iou_thr = cfg.nms.iou_threshold
        self.max_per_img = cfg.get('max_per_img', -1)
        self.min_bbox_size = cfg.get('min_bbox_size', -1)
        self.num_classes = head.cls_out_channels

    def _candidates(self, cls_scores, bbox_preds, image: int):
        """The ``nms_pre`` best (anchor, class) pairs of every level of one image."""
        boxes, scores, labels = [], [], []
        for level, (cls, reg) in enumerate(zip(cls_scores, bbox_preds)):
            score = cls[image].permute(1, 2, 0).reshape(-1).sigmoid()
            delta = reg[image].permute(1, 2, 0).reshape(-1, 4)
            k = score.shape[0] if self.nms_pre <= 0 else min(self.nms_pre, score.shape[0])
            score, index = score.topk(k)
            anchor = index // self.num_classes
            boxes.append(self.model.bbox_head.bbox_coder.decode(
                getattr(self, f'anchors{level}')[anchor], delta[anchor]))
            scores.append(score)
            labels.append(index % self.num_classes)
        return torch.cat(boxes), torch.cat(scores), torch.cat(labels)

    def forward(self, inputs, img_shape, scale_factor):
        cls_scores, bbox_preds = self.model.bbox_head(self.model.extract_feat(inputs))
        dets = []
        for image in range(inputs.shape[0]):
            boxes, scores, labels = self._candidates(cls_scores, bbox_preds, image)
            h, w = img_shape[image].to(boxes.dtype).unbind()
            x1, y1, x2, y2 = boxes.clamp(min=0).unbind(1)
            boxes = torch.stack([x1.minimum(w), y1.minimum(h), x2.minimum(w), y2.minimum(h)], 1)
            boxes = boxes / scale_factor[image].to(boxes.dtype).repeat(2)
            # boxes that mmdet drops before its NMS get score 0 here: NMS visits boxes by
            # descending score, so they suppress none of the kept ones, and they are cut below
            valid = scores > self.score_thr
            if self.min_bbox_size >= 0:
                valid &= (boxes[:, 2] - boxes[:, 0] > self.min_bbox_size) & (
                    boxes[:, 3] - boxes[:, 1] > self.min_bbox_size)
            scores = torch.where(valid, scores, torch.zeros_like(scores))
            offsets = labels.to(boxes.dtype) * (boxes.max() + 1)
            keep = torchvision.ops.nms(boxes + offsets[:, None], scores, self.iou_thr)
            keep = keep[scores[keep] > self.score_thr]
            if self.max_per_img > 0:
                keep = keep[:self.max_per_img]
            dets.append(torch.cat([boxes[keep], scores[keep, None],
                                   labels[keep, None].to(boxes.dtype),
                                   torch.full_like(scores[keep, None], image)], 1))
        return torch.cat(dets)


def matched_fraction(ref: np.ndarray, got: np.ndarray, min_iou: float = 0.99,
                     score_tol: float = 1e-3) -> float:
    """The share of the detections ``ref`` that ``got`` has too.

    A row of ``ref`` (``x1 y1 x2 y2 score label image``, as the exported graph
    gives them) is matched by a row of ``got`` of the same image, the best-overlapping
    one, when that row has its label, an IoU of at least ``min_iou`` and a score within
    ``score_tol``. Two runs of one detector differ by float rounding only, yet
    where scores are nearly tied rounding may change the order NMS visits them in
    and so which of two neighbours it keeps: compare by matching, not row by row.

    Example:
        >>> a = np.array([[0, 0, 10, 10, .9, 0, 0], [20, 20, 30, 30, .8, 0, 0]], np.float32)
        >>> matched_fraction(a, a[::-1].copy()), matched_fraction(a, a[:1].copy())
        (1.0, 0.5)
    """
    if not len(ref):
        return 1.0
    matched = 0
    for image in np.unique(ref[:, 6]):
        mine, theirs = ref[ref[:, 6] == image], got[got[:, 6] == image]
        if not len(theirs):
            continue
        iou = torchvision.ops.box_iou(torch.from_numpy(mine[:, :4]),
                                      torch.from_numpy(theirs[:, :4]))
        best, index = iou.max(dim=1)
        best, partner = best.numpy(), theirs[index.numpy()]
        matched += int(((best >= min_iou) & (np.abs(partner[:, 4] - mine[:, 4]) <= score_tol)
                        & (partner[:, 5] == mine[:, 5])).sum())
    return matched / len(ref)


def _test_pipeline(cfg):
    """The config's test pipeline without annotation loading, as mmcv transforms."""
    from mmcv.transforms import Compose
    from mmengine.registry import DefaultScope

    steps = [t for t in cfg.test_dataloader.dataset.pipeline if t['type'] != 'LoadAnnotations']
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return Compose(steps)


def default_input_size(cfg) -> tuple:
    """``(H, W)`` of the test pipeline's ``Resize`` scale, padded to the data
    preprocessor's ``pad_size_divisor``: what mmdet's test feeds the model for an
    image of that scale's aspect."""
    resize = next((t for t in cfg.test_dataloader.dataset.pipeline if t['type'] == 'Resize'),
                  None)
    if resize is None or 'scale' not in resize:
        raise ValueError('the config has no Resize with a scale in its test pipeline: give '
                         'shape (H, W)')
    w, h = resize['scale']
    divisor = cfg.model.data_preprocessor.get('pad_size_divisor', 1)
    return (math.ceil(h / divisor) * divisor, math.ceil(w / divisor) * divisor)


def export_detector_onnx(config: str, checkpoint: str, out: str,
                         shape: Optional[Sequence[int]] = None, batch_size: int = 1,
                         cfg_options: Optional[dict] = None) -> dict:
    """Export a whole RetinaNet-style detector, post-processing included, to ONNX.

    The model is built in the checkpoint's form, loaded strictly and converted
    to its deploy form; the graph (:class:`SingleStageDetectorWithNMS`) has a
    fixed batch and input size, is written as one file (folder created), and
    is checked in onnxruntime against the PyTorch module on a random input
    (:func:`matched_fraction`).

    Args:
        config (str): An mmdet single-stage detector config (RetinaNet).
        checkpoint (str): Its checkpoint (training form, fully sparsified, or
            deploy form).
        out (str): The ``.onnx`` file to write.
        shape (Sequence[int], optional): Padded input ``(H, W)``; default:
            :func:`default_input_size`.
        batch_size (int): Images per run.
        cfg_options (dict, optional): Overrides for the config.

    Returns:
        dict: ``out``, ``input_shape``, ``output_names``, and of the check:
        ``num_dets`` and ``num_ort_dets`` (PyTorch's and onnxruntime's boxes)
        and ``matched`` (:func:`matched_fraction`, at least 0.98, with box
        counts within 2%).

    Raises:
        ValueError: on a detector of another kind, a bad ``shape`` or
            ``batch_size``; RuntimeError when onnxruntime disagrees.
    """
    cfg = load_config(config, cfg_options)
    if cfg.default_scope != 'mmdet':
        raise ValueError(f'{config} is not an mmdet config (default_scope '
                         f'{cfg.default_scope!r}): whole-detector export is for detectors')
    shape = tuple(shape) if shape is not None else default_input_size(cfg)
    if len(shape) != 2 or not all(isinstance(s, int) and s >= 32 for s in shape):
        raise ValueError(f'shape must be two ints (H, W), each >= 32, got {shape!r}')
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f'batch_size must be an int >= 1, got {batch_size!r}')
    model, _ = load_deploy_model(config, checkpoint, cfg_options)
    wrapper = SingleStageDetectorWithNMS(model, shape).eval()
    generator = torch.Generator().manual_seed(0)
    args = (torch.randn(batch_size, 3, *shape, generator=generator),
            torch.tensor([shape] * batch_size, dtype=torch.int64),
            torch.ones(batch_size, 2))
    with torch.no_grad():
        ref = wrapper(*args)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(wrapper, args, out, input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), dynamo=True, external_data=False)
    got = onnxruntime_session(out).run(None, {n: a.numpy() for n, a in zip(INPUT_NAMES, args)})[0]
    ref = ref.numpy()
    matched = matched_fraction(ref, got)
    if abs(len(got) - len(ref)) > 0.02 * len(ref) or matched < 0.98:
        raise RuntimeError(f'{out}: onnxruntime kept {len(got)} boxes, PyTorch {len(ref)}, '
                           f'{matched:.1%} of them matched (IoU >= 0.99, score within 1e-3); '
                           'rounding alone leaves at least 98%')
    return dict(out=out, input_shape=[batch_size, 3, *shape], output_names=list(OUTPUT_NAMES),
                num_dets=len(ref), num_ort_dets=len(got), matched=matched)


def detect_with_onnx(onnx_file: str, config: str, images: Sequence[str],
                     cfg_options: Optional[dict] = None) -> List[dict]:
    """Run an exported whole detector (:func:`export_detector_onnx`) on image files.

    Each image goes through the config's test pipeline and its model's data
    preprocessor (resize, normalise, pad), is padded further to the file's
    input size, and runs in batches of the file's batch size.

    Args:
        onnx_file (str): The exported detector.
        config (str): The config it was exported from.
        images (Sequence[str]): Image files.
        cfg_options (dict, optional): The overrides it was exported with.

    Returns:
        list[dict]: Per image: ``bboxes`` ``(K, 4)`` in its pixels, ``scores``
        ``(K,)``, ``labels`` ``(K,)``, NumPy arrays by descending score.

    Raises:
        ValueError: when the file is not such a detector, or an image is
            larger than the file's input size after the test resize.
    """
    from mmengine.registry import MODELS, DefaultScope

    session = onnxruntime_session(onnx_file)
    names = tuple(i.name for i in session.get_inputs())
    if names != INPUT_NAMES:
        raise ValueError(f'{onnx_file} is not a whole detector of export_detector_onnx: its '
                         f'inputs are {list(names)}, expected {list(INPUT_NAMES)}')
    batch, _, height, width = session.get_inputs()[0].shape
    cfg = load_config(config, cfg_options)
    pipeline = _test_pipeline(cfg)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        preprocessor = MODELS.build(cfg.model.data_preprocessor)
    results = []
    for start in range(0, len(images), batch):
        chunk = list(images[start:start + batch])
        packed = [pipeline(dict(img_path=path, img_id=i)) for i, path in enumerate(chunk)]
        data = preprocessor(dict(inputs=[p['inputs'] for p in packed],
                                 data_samples=[p['data_samples'] for p in packed]), False)
        x = data['inputs']
        if x.shape[-2] > height or x.shape[-1] > width:
            raise ValueError(f'{chunk}: resized and padded to {tuple(x.shape[-2:])}, larger '
                             f'than the input size of {onnx_file} ({height}, {width})')
        inputs = np.zeros((batch, 3, height, width), np.float32)
        inputs[:len(chunk), :, :x.shape[-2], :x.shape[-1]] = x.numpy()
        metas = [s.metainfo for s in data['data_samples']]
        img_shape = np.array([m['img_shape'] for m in metas]
                             + [(height, width)] * (batch - len(chunk)), np.int64)
        scale = np.array([m['scale_factor'] for m in metas]
                         + [(1.0, 1.0)] * (batch - len(chunk)), np.float32)
        dets = session.run(None, dict(zip(INPUT_NAMES, (inputs, img_shape, scale))))[0]
        for i in range(len(chunk)):
            mine = dets[dets[:, 6] == i]
            results.append(dict(bboxes=mine[:, :4], scores=mine[:, 4],
                                labels=mine[:, 5].astype(np.int64)))
    return results
