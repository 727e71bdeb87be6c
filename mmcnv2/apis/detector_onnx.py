"""Whole detectors in ONNX, post-processing included, and their runner.

:func:`export_detector_onnx` writes one ONNX file with the backbone, the neck,
the heads, the box decoding and the NMS (ONNX ``NonMaxSuppression``) of an mmdet
RetinaNet-type single-stage detector (:class:`SingleStageDetectorWithNMS`) or a
Faster R-CNN (:class:`TwoStageDetectorWithNMS`: RPN proposals, ONNX
``RoiAlign``, box head); it returns boxes in the original image's pixels, as
mmdet's ``predict`` does. :class:`OnnxDetector` runs such a file in onnxruntime
on images, with the config's own test pipeline and normalisation in front of it.
"""
import copy
import math
import os
import os.path as osp
import warnings
from typing import List, Optional, Sequence

import numpy as np
import onnx
import torch
import torch.nn as nn
import torchvision

from .export import export_form, load_deploy_model, onnxruntime_session, unsafe_scatter_nodes
from .runner import load_config

#: The graph's inputs and output, in order.
INPUT_NAMES = ('inputs', 'img_shape', 'scale_factor')
OUTPUT_NAMES = ('dets', )


def _register_anchors(module: nn.Module, model: nn.Module, head: nn.Module,
                      input_hw: Sequence[int]):
    """``anchors0``, ``anchors1``... of ``head``'s prior generator for the feature map sizes
    that ``model``'s backbone and neck give at ``input_hw``, as non-persistent buffers."""
    with torch.no_grad():
        sizes = [tuple(f.shape[-2:]) for f in model.extract_feat(torch.zeros(1, 3, *input_hw))]
    for i, anchors in enumerate(head.prior_generator.grid_priors(sizes, device='cpu')):
        module.register_buffer(f'anchors{i}', anchors, persistent=False)


def _clip(boxes, hw):
    """``boxes`` ``(N, 4)`` clipped to ``[0, w] x [0, h]`` (``hw`` a tensor ``(h, w)``), as
    mmdet's ``DeltaXYWHBBoxCoder.decode`` with ``max_shape``."""
    h, w = hw.to(boxes.dtype).unbind()
    x1, y1, x2, y2 = boxes.clamp(min=0).unbind(1)
    return torch.stack([x1.minimum(w), y1.minimum(h), x2.minimum(w), y2.minimum(h)], 1)


def _wide_enough(boxes, min_size: float):
    """Boxes wider and higher than ``min_size`` (mmdet's ``min_bbox_size`` rule)."""
    return (boxes[:, 2] - boxes[:, 0] > min_size) & (boxes[:, 3] - boxes[:, 1] > min_size)


def _batched_nms(boxes, scores, groups, iou_thr: float):
    """NMS within each group (class or level): the boxes shifted apart by group, as mmcv's
    ``batched_nms``; the kept indices by descending score (ONNX ``NonMaxSuppression``)."""
    offsets = groups.to(boxes.dtype) * (boxes.max() + 1)
    return torchvision.ops.nms(boxes + offsets[:, None], scores, iou_thr)


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
        _register_anchors(self, model, head, input_hw)
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
            boxes = _clip(boxes, img_shape[image])
            boxes = boxes / scale_factor[image].to(boxes.dtype).repeat(2)
            # boxes that mmdet drops before its NMS get score 0 here: NMS visits boxes by
            # descending score, so they suppress none of the kept ones, and they are cut below
            valid = scores > self.score_thr
            if self.min_bbox_size >= 0:
                valid &= _wide_enough(boxes, self.min_bbox_size)
            scores = torch.where(valid, scores, torch.zeros_like(scores))
            keep = _batched_nms(boxes, scores, labels, self.iou_thr)
            keep = keep[scores[keep] > self.score_thr]
            if self.max_per_img > 0:
                keep = keep[:self.max_per_img]
            dets.append(torch.cat([boxes[keep], scores[keep, None],
                                   labels[keep, None].to(boxes.dtype),
                                   torch.full_like(scores[keep, None], image)], 1))
        return torch.cat(dets)


class TwoStageDetectorWithNMS(nn.Module):
    """An mmdet Faster R-CNN with its test-time post-processing, traceable.

    It computes what ``TwoStageDetector.predict`` computes, for a batch of
    images of one padded size:

    * RPN proposals as ``RPNHead.predict_by_feat``: on every level the
      ``nms_pre`` best anchors, decoded and clipped to the resized image,
      boxes with a side of at most ``min_bbox_size`` dropped, NMS within each
      level (level offsets, as mmcv's ``batched_nms``), the ``max_per_img`` best;
    * RoI features as ``SingleRoIExtractor``: each proposal on the level its
      scale maps to (``finest_scale``), by ``torchvision.ops.roi_align`` with
      the config's output size, spatial scale and sampling ratio, aligned
      (mmcv's ``RoIAlign(aligned=True)`` gives the same numbers; it exports to
      ONNX ``RoiAlign`` with ``coordinate_transformation_mode='half_pixel'``);
    * the box head as ``BBoxHead.predict_by_feat``: softmax scores, boxes
      decoded per class, clipped, rescaled to the original image, scores above
      ``score_thr``, NMS per class, the ``max_per_img`` best.

    The proposals are grouped by RoI level, not in mmdet's order; the output is
    ordered by score, so this changes nothing but which of two exactly tied
    boxes NMS visits first.

    Args:
        model (nn.Module): An mmdet two-stage detector with an ``RPNHead``
            (``AnchorGenerator``, ``DeltaXYWHBBoxCoder``, sigmoid) and a
            ``StandardRoIHead`` without masks (``SingleRoIExtractor`` with
            mmcv's ``RoIAlign``, average pooling, aligned; a box head with a
            ``DeltaXYWHBBoxCoder`` and softmax classes), in eval mode.
        input_hw (Sequence[int]): The padded input size ``(H, W)``.

    Inputs and output as :class:`SingleStageDetectorWithNMS`.
    """

    def __init__(self, model: nn.Module, input_hw: Sequence[int]):
        super().__init__()
        rpn, roi = getattr(model, 'rpn_head', None), getattr(model, 'roi_head', None)
        extractor = getattr(roi, 'bbox_roi_extractor', None)
        box_head = getattr(roi, 'bbox_head', None)
        layers = list(getattr(extractor, 'roi_layers', []))
        kinds = dict(
            rpn_head=type(rpn).__name__,
            rpn_priors=type(getattr(rpn, 'prior_generator', None)).__name__,
            rpn_coder=type(getattr(rpn, 'bbox_coder', None)).__name__,
            rpn_sigmoid=getattr(rpn, 'use_sigmoid_cls', False),
            roi_head=type(roi).__name__, masks=bool(getattr(roi, 'with_mask', False)),
            roi_extractor=type(extractor).__name__,
            roi_layers=sorted({(type(m).__name__, getattr(m, 'pool_mode', None),
                                getattr(m, 'aligned', None)) for m in layers}),
            box_coder=type(getattr(box_head, 'bbox_coder', None)).__name__,
            box_softmax=not getattr(box_head, 'custom_cls_channels', True))
        supported = dict(rpn_head='RPNHead', rpn_priors='AnchorGenerator',
                         rpn_coder='DeltaXYWHBBoxCoder', rpn_sigmoid=True,
                         roi_head='StandardRoIHead', masks=False,
                         roi_extractor='SingleRoIExtractor',
                         roi_layers=[('RoIAlign', 'avg', True)],
                         box_coder='DeltaXYWHBBoxCoder', box_softmax=True)
        if kinds != supported:
            differ = ', '.join(f'{k}={kinds[k]} (not {v})' for k, v in supported.items()
                               if kinds[k] != v)
            raise ValueError('whole-detector export supports two-stage detectors as Faster '
                             f'R-CNN: {type(model).__name__} has {differ}')
        self.model = model
        _register_anchors(self, model, rpn, input_hw)
        self.rpn_cfg, self.rcnn_cfg = model.test_cfg.rpn, model.test_cfg.rcnn
        self.num_classes = box_head.num_classes
        self.class_agnostic = box_head.reg_class_agnostic

    def _proposals(self, cls_scores, bbox_preds, image: int, hw):
        """The RPN's proposals for one image, in the resized image's pixels."""
        cfg, coder = self.rpn_cfg, self.model.rpn_head.bbox_coder
        nms_pre = cfg.get('nms_pre', -1)
        boxes, scores, levels = [], [], []
        for level, (cls, reg) in enumerate(zip(cls_scores, bbox_preds)):
            score = cls[image].permute(1, 2, 0).reshape(-1).sigmoid()
            delta = reg[image].permute(1, 2, 0).reshape(-1, 4)
            k = score.shape[0] if nms_pre <= 0 else min(nms_pre, score.shape[0])
            score, index = score.topk(k)
            boxes.append(coder.decode(getattr(self, f'anchors{level}')[index], delta[index]))
            scores.append(score)
            levels.append(torch.full_like(index, level))
        boxes, scores, levels = _clip(torch.cat(boxes), hw), torch.cat(scores), torch.cat(levels)
        if cfg.get('min_bbox_size', -1) >= 0:
            # boxes that mmdet drops before its NMS get score -1: visited last, they
            # suppress none of the others, and they are cut after it
            valid = _wide_enough(boxes, cfg.min_bbox_size)
            scores = torch.where(valid, scores, torch.full_like(scores, -1))
        keep = _batched_nms(boxes, scores, levels, cfg.nms.iou_threshold)
        if cfg.get('min_bbox_size', -1) >= 0:
            keep = keep[valid[keep]]
        if cfg.get('max_per_img', -1) > 0:
            keep = keep[:cfg.max_per_img]
        return boxes[keep]

    def _roi_features(self, feats, rois):
        """RoI features of ``rois`` ``(N, 5)`` (image, box), each from the level its scale
        maps to; the RoIs regrouped by level, and their features in that order."""
        extractor = self.model.roi_head.bbox_roi_extractor
        feats = feats[:extractor.num_inputs]
        scale = ((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2])).sqrt()
        levels = (scale / extractor.finest_scale + 1e-6).log2().floor().clamp(
            min=0, max=len(feats) - 1)
        grouped, features = [], []
        for level, (feat, layer) in enumerate(zip(feats, extractor.roi_layers)):
            mine = rois[levels == level]
            grouped.append(mine)
            features.append(torchvision.ops.roi_align(
                feat, mine, layer.output_size, layer.spatial_scale, layer.sampling_ratio,
                aligned=True))
        return torch.cat(grouped), torch.cat(features)

    def forward(self, inputs, img_shape, scale_factor):
        feats = self.model.extract_feat(inputs)
        cls_scores, bbox_preds = self.model.rpn_head(feats)
        rois = []
        for image in range(inputs.shape[0]):
            proposals = self._proposals(cls_scores, bbox_preds, image, img_shape[image])
            rois.append(torch.cat([torch.full_like(proposals[:, :1], image), proposals], 1))
        rois, roi_feats = self._roi_features(feats, torch.cat(rois))
        box_head, cfg = self.model.roi_head.bbox_head, self.rcnn_cfg
        cls_score, bbox_pred = box_head(roi_feats)
        scores = cls_score.softmax(-1)[:, :-1]
        classes = 1 if self.class_agnostic else self.num_classes
        boxes = box_head.bbox_coder.decode(rois[:, 1:].repeat_interleave(classes, 0),
                                           bbox_pred.reshape(-1, 4)).reshape(-1, classes, 4)
        boxes = boxes.expand(-1, self.num_classes, 4)
        labels = torch.arange(self.num_classes).expand_as(scores)
        dets = []
        for image in range(inputs.shape[0]):
            mine = rois[:, 0] == image
            box = _clip(boxes[mine].reshape(-1, 4), img_shape[image])
            box = box / scale_factor[image].to(box.dtype).repeat(2)
            score, label = scores[mine].reshape(-1), labels[mine].reshape(-1)
            # scores at most score_thr: 0, visited last by NMS and cut after it
            score = torch.where(score > cfg.score_thr, score, torch.zeros_like(score))
            keep = _batched_nms(box, score, label, cfg.nms.iou_threshold)
            keep = keep[score[keep] > cfg.score_thr]
            if cfg.get('max_per_img', -1) > 0:
                keep = keep[:cfg.max_per_img]
            dets.append(torch.cat([box[keep], score[keep, None], label[keep, None].to(box.dtype),
                                   torch.full_like(score[keep, None], image)], 1))
        return torch.cat(dets)


def whole_detector_module(model: nn.Module, input_hw: Sequence[int]) -> nn.Module:
    """The traceable whole detector of an mmdet ``model`` (eval mode):
    :class:`TwoStageDetectorWithNMS` for a detector with an RPN,
    :class:`SingleStageDetectorWithNMS` otherwise."""
    if hasattr(model, 'rpn_head'):
        return TwoStageDetectorWithNMS(model, input_hw).eval()
    return SingleStageDetectorWithNMS(model, input_hw).eval()


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
    """The config's test pipeline without annotation loading, as mmcv transforms, loading
    images from file names or from arrays (mmdet's ``InferencerLoader``, as mmdet's
    ``DetInferencer`` does)."""
    from mmcv.transforms import Compose
    from mmengine.registry import DefaultScope

    steps = []
    for step in cfg.test_dataloader.dataset.pipeline:
        if step['type'] == 'LoadAnnotations':
            continue
        if step['type'] in ('LoadImageFromFile', 'mmdet.LoadImageFromFile'):
            step = dict(step, type='mmdet.InferencerLoader')
        steps.append(step)
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
    """Export a whole RetinaNet-style or Faster R-CNN detector, post-processing included,
    to ONNX.

    The model is built in the checkpoint's form, loaded strictly and converted
    to its deploy form; the graph (:func:`whole_detector_module` of its
    :func:`~mmcnv2.apis.export.export_form`) has a fixed batch and input size,
    is written as one file (folder created), and is checked in onnxruntime
    against the deploy form's module on a random input (:func:`matched_fraction`).

    Args:
        config (str): An mmdet RetinaNet or Faster R-CNN config.
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
            ``batch_size``; RuntimeError when onnxruntime disagrees or the graph
            holds a scatter that may repeat indices (:func:`~mmcnv2.apis.export.unsafe_scatter_nodes`).
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
    wrapper = whole_detector_module(model, shape)
    generator = torch.Generator().manual_seed(0)
    args = (torch.randn(batch_size, 3, *shape, generator=generator),
            torch.tensor([shape] * batch_size, dtype=torch.int64),
            torch.ones(batch_size, 2))
    with torch.no_grad():
        ref = wrapper(*args)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    # Faster R-CNN through the TorchScript exporter: the dynamo exporter's symbolic shapes
    # for its data-dependent RoI counts took 768 s on a narrowed Faster R-CNN-CondenseNetV2-A
    # at 256x256 (85 s by TorchScript, the same boxes in onnxruntime; loaded 2-core machine)
    exporter = (dict(dynamo=False, opset_version=17) if isinstance(
        wrapper, TwoStageDetectorWithNMS) else dict(dynamo=True, external_data=False))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(whole_detector_module(export_form(model), shape), args, out,
                          input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), **exporter)
    unsafe = unsafe_scatter_nodes(onnx.load(out))
    if unsafe:
        raise RuntimeError(f'{out}: the exported graph holds scatters that may repeat indices '
                           f'(onnxruntime is not thread-safe for them): {unsafe}')
    got = onnxruntime_session(out).run(None, {n: a.numpy() for n, a in zip(INPUT_NAMES, args)})[0]
    ref = ref.numpy()
    matched = matched_fraction(ref, got)
    if abs(len(got) - len(ref)) > 0.02 * len(ref) or matched < 0.98:
        raise RuntimeError(f'{out}: onnxruntime kept {len(got)} boxes, PyTorch {len(ref)}, '
                           f'{matched:.1%} of them matched (IoU >= 0.99, score within 1e-3); '
                           'rounding alone leaves at least 98%')
    return dict(out=out, input_shape=[batch_size, 3, *shape], output_names=list(OUTPUT_NAMES),
                num_dets=len(ref), num_ort_dets=len(got), matched=matched)


#: What a whole detector of :func:`export_detector_onnx` takes and gives: per input and
#: output, its name, onnxruntime's element type and its shape (``B``, ``H``, ``W``, ``K``:
#: any size, fixed or dynamic).
SIGNATURE = dict(
    inputs=(('inputs', 'tensor(float)', ('B', 3, 'H', 'W')),
            ('img_shape', 'tensor(int64)', ('B', 2)),
            ('scale_factor', 'tensor(float)', ('B', 2))),
    outputs=(('dets', 'tensor(float)', ('K', 7)), ))


def _signature_of(args) -> tuple:
    """``(name, type, shape)`` of onnxruntime's ``NodeArg`` s, sizes as given by the
    file (ints, or names / None where dynamic)."""
    return tuple((a.name, a.type, tuple(a.shape)) for a in args)


def _fits(signature, expected) -> bool:
    """Whether ``signature`` (:func:`_signature_of`) has the names, types and shapes of
    ``expected`` (a tuple of :data:`SIGNATURE`), a letter standing for any size."""
    if len(signature) != len(expected):
        return False
    for (name, kind, shape), (want_name, want_kind, want_shape) in zip(signature, expected):
        if (name, kind, len(shape)) != (want_name, want_kind, len(want_shape)):
            return False
        if any(isinstance(w, int) and s != w for s, w in zip(shape, want_shape)):
            return False
    return True


def _describe(signature) -> str:
    """``name type[shape]`` for each of ``signature``, as in an error message."""
    return ', '.join(f"{name} {kind[7:-1]}[{', '.join(map(str, shape))}]"
                     for name, kind, shape in signature)


def open_detector_session(onnx_file: str, intra_op_threads: int = 0):
    """An onnxruntime session of ``onnx_file``, checked to be a whole detector of
    :func:`export_detector_onnx` (its inputs' and output's names, types and shapes).

    Raises:
        FileNotFoundError: if there is no such file.
        ValueError: if onnxruntime cannot read it as ONNX (empty, truncated, another
            format) or it is another graph (a classifier, a backbone...).
    """
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

    if not osp.isfile(onnx_file):
        raise FileNotFoundError(f'ONNX file not found: {onnx_file}')
    try:
        session = onnxruntime_session(onnx_file, intra_op_threads)
    except (ort_errors.Fail, ort_errors.InvalidArgument, ort_errors.InvalidProtobuf,
            ort_errors.InvalidGraph, ort_errors.NotImplemented) as e:
        reason = str(e).split(' failed:')[-1].strip()
        raise ValueError(f'{onnx_file} is not an ONNX model that onnxruntime can load '
                         f'(empty, truncated or another format?): {reason}') from None
    inputs, outputs = _signature_of(session.get_inputs()), _signature_of(session.get_outputs())
    if not (_fits(inputs, SIGNATURE['inputs']) and _fits(outputs, SIGNATURE['outputs'])):
        raise ValueError(
            f'{onnx_file} is not a whole detector of export_detector_onnx (tools/export_onnx.py '
            f'--whole-detector): it takes {_describe(inputs)} and gives {_describe(outputs)}; '
            f"expected inputs {_describe(SIGNATURE['inputs'])} and output "
            f"{_describe(SIGNATURE['outputs'])}")
    return session


class OnnxDetector:
    """A whole detector of :func:`export_detector_onnx` in onnxruntime, on images.

    Each image (a file name or a BGR array) goes through the config's test
    pipeline and its model's data preprocessor (resize, normalise, pad), is
    padded further to the file's input size (bottom and right, with zeros, as
    the preprocessor pads), and runs in batches of the file's batch size, the
    last one filled up with blank images.

    Args:
        onnx_file (str): The exported detector (checked by :func:`open_detector_session`).
        config (str | Config): The config it was exported from.
        cfg_options (dict, optional): The overrides it was exported with.
        intra_op_threads (int): onnxruntime's threads; 0: its default.

    Attributes:
        cfg (Config): The config, overrides merged.
        batch_size (int): Images per run of the graph.
        input_hw (tuple | None): Its input ``(H, W)``; None if dynamic.
        dataset_meta (dict): The config's test dataset's ``classes`` and ``palette``.

    Example:
        >>> config = 'configs/demo/retinanet_cnv2_trees.py'
        >>> detector = OnnxDetector('retinanet.onnx', config)  # doctest: +SKIP
        >>> sample = detector(['tile.jpg'])[0]  # doctest: +SKIP
        >>> sample.pred_instances.bboxes.shape  # doctest: +SKIP
        torch.Size([K, 4])
    """

    def __init__(self, onnx_file: str, config, cfg_options: Optional[dict] = None,
                 intra_op_threads: int = 0):
        from mmengine.config import Config
        from mmengine.registry import DATASETS, MODELS, DefaultScope

        if isinstance(config, Config):
            cfg = copy.deepcopy(config)
            if cfg_options:
                cfg.merge_from_dict(cfg_options)
        else:
            cfg = load_config(config, cfg_options)
        if cfg.get('default_scope') != 'mmdet':
            raise ValueError(f'{getattr(cfg, "filename", config)} is not an mmdet config '
                             f"(default_scope {cfg.get('default_scope')!r}): an exported whole "
                             'detector runs behind a detection config')
        self.onnx_file, self.cfg = onnx_file, cfg
        self.session = open_detector_session(onnx_file, intra_op_threads)
        batch, _, height, width = self.session.get_inputs()[0].shape
        self.batch_size = batch if isinstance(batch, int) else 1
        self.input_hw = (height, width) if isinstance(height, int) and isinstance(
            width, int) else None
        self.pipeline = _test_pipeline(cfg)
        with DefaultScope.overwrite_default_scope(cfg.default_scope):
            self.preprocessor = MODELS.build(cfg.model.data_preprocessor)
            dataset = dict(cfg.test_dataloader.dataset, lazy_init=True)
            metainfo = DATASETS.build(dataset).metainfo
        self.dataset_meta = dict(classes=tuple(metainfo['classes']),
                                 palette=metainfo.get('palette', 'random'))

    def _batch_inputs(self, chunk: Sequence, names: Sequence[str]) -> tuple:
        """The graph's inputs for up to ``batch_size`` images, and their data samples."""
        packed = [self.pipeline(dict(img_path=x) if isinstance(x, str) else dict(img=x))
                  for x in chunk]
        data = self.preprocessor(dict(inputs=[p['inputs'] for p in packed],
                                      data_samples=[p['data_samples'] for p in packed]), False)
        x, samples = data['inputs'], data['data_samples']
        height, width = self.input_hw or x.shape[-2:]
        if x.shape[-2] > height or x.shape[-1] > width:
            raise ValueError(
                f'{self.onnx_file} takes images of at most {height}x{width} (its input size, '
                f"fixed at export), but the config's test pipeline resizes and pads "
                f"{', '.join(names)} to {x.shape[-2]}x{x.shape[-1]}: export with --shape H W "
                'large enough, or give the config it was exported from')
        inputs = np.zeros((self.batch_size, 3, height, width), np.float32)
        inputs[:len(chunk), :, :x.shape[-2], :x.shape[-1]] = x.numpy()
        metas = [s.metainfo for s in samples]
        blank = self.batch_size - len(chunk)
        img_shape = np.array([m['img_shape'] for m in metas] + [(height, width)] * blank,
                             np.int64)
        scale = np.array([m['scale_factor'] for m in metas] + [(1.0, 1.0)] * blank, np.float32)
        return (inputs, img_shape, scale), samples

    def __call__(self, images: Sequence, names: Optional[Sequence[str]] = None) -> list:
        """Detect objects in ``images`` (file names or BGR ``uint8`` arrays).

        Args:
            images (Sequence[str | np.ndarray]): The images.
            names (Sequence[str], optional): What to call them in errors
                (default: the file names, or ``image <i>``).

        Returns:
            list[DetDataSample]: Per image, its metainfo (``img_shape``,
            ``ori_shape``, ``scale_factor``...) and ``pred_instances``
            (``bboxes`` in its pixels, ``scores``, ``labels``, by descending
            score), as mmdet's ``predict`` gives them.

        Raises:
            ValueError: if an image is larger than the file's input size after
                the test resize, or the file gives a label that the config has no
                class for.
        """
        from mmengine.structures import InstanceData

        if names is None:
            names = [x if isinstance(x, str) else f'image {i}' for i, x in enumerate(images)]
        samples = []
        for start in range(0, len(images), self.batch_size):
            chunk = list(images[start:start + self.batch_size])
            args, chunk_samples = self._batch_inputs(chunk, names[start:start + len(chunk)])
            dets = self.session.run(None, dict(zip(INPUT_NAMES, args)))[0]
            for i, sample in enumerate(chunk_samples):
                mine = torch.from_numpy(dets[dets[:, 6] == i])
                labels = mine[:, 5].long()
                if len(labels) and labels.max() >= len(self.dataset_meta['classes']):
                    raise ValueError(
                        f'{self.onnx_file} gives label {int(labels.max())}, but the config '
                        f"has {len(self.dataset_meta['classes'])} class(es): give the config "
                        'it was exported from')
                sample.pred_instances = InstanceData(bboxes=mine[:, :4], scores=mine[:, 4],
                                                     labels=labels)
                samples.append(sample)
        return samples


def detect_with_onnx(onnx_file: str, config: str, images: Sequence[str],
                     cfg_options: Optional[dict] = None) -> List[dict]:
    """Run an exported whole detector (:func:`export_detector_onnx`) on image files
    (:class:`OnnxDetector`).

    Args:
        onnx_file (str): The exported detector.
        config (str): The config it was exported from.
        images (Sequence[str]): Image files.
        cfg_options (dict, optional): The overrides it was exported with.

    Returns:
        list[dict]: Per image: ``bboxes`` ``(K, 4)`` in its pixels, ``scores``
        ``(K,)``, ``labels`` ``(K,)``, NumPy arrays by descending score.

    Raises:
        ValueError: see :class:`OnnxDetector`.
    """
    return [dict(bboxes=s.pred_instances.bboxes.numpy(), scores=s.pred_instances.scores.numpy(),
                 labels=s.pred_instances.labels.numpy())
            for s in OnnxDetector(onnx_file, config, cfg_options)(images)]
