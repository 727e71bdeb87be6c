"""Inference on image files: pictures and predictions, for detectors and classifiers.

:func:`infer_images` runs a detector through mmdet's ``DetInferencer``,
:func:`classify_images` a classifier through mmpretrain's
``ImageClassificationInferencer``; both build the model in the form its
checkpoint holds, report unreadable files while they process the others, and
show a progress bar. Unlike ``DetInferencer(...)(images, out_dir=...)``, :func:`infer_images`

* saves the same boxes it draws (score above ``score_thr``), not every box;
* draws large images on a downscaled copy (``max_vis_side``): mmdet draws at
  full resolution through matplotlib, which grows the process by about 120
  bytes per pixel (measured: 0.22 GB at 1333x1333, 1.9 GB at 4000x4000);
* refuses an input list without images, and reports files it cannot read
  while it processes the others.
"""
import copy
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.config import Config

from ..checkpoint.files import check_state_dict_fits, read_checkpoint, state_dict_of
from .detector_onnx import OnnxDetector
from .runner import match_checkpoint_form

#: Pictures whose longest side is larger are drawn on a copy scaled down to it (the longest
#: side mmdet's detection configs resize images to for testing).
DEFAULT_MAX_VIS_SIDE = 1333


def list_images(inputs: Sequence[str]) -> List[str]:
    """The image files of ``inputs``: files as given, folders' image files sorted.

    A folder's image files are those with an extension of mmdet's
    ``DetInferencer``; files given by name are taken whatever their extension.

    Raises:
        FileNotFoundError: if an input does not exist.
        ValueError: if a folder holds no image file (by extension) or there is no input.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> list_images([folder])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: no image files in folder ...
    """
    from mmdet.apis.det_inferencer import IMG_EXTENSIONS

    if isinstance(inputs, str):
        inputs = [inputs]
    if not inputs:
        raise ValueError('no images given')
    files = []
    for path in inputs:
        if osp.isdir(path):
            found = sorted(n for n in os.listdir(path)
                           if n.lower().endswith(IMG_EXTENSIONS) and osp.isfile(osp.join(path, n)))
            if not found:
                raise ValueError(f'no image files in folder {path} (extensions: '
                                 f'{", ".join(IMG_EXTENSIONS)})')
            files += [osp.join(path, n) for n in found]
        elif osp.exists(path):
            files.append(path)
        else:
            raise FileNotFoundError(f'image or folder not found: {path}')
    return files


def read_image(path: str) -> Optional[np.ndarray]:
    """The image at ``path`` as BGR uint8 (as mmdet's loader reads it), or None if unreadable."""
    import cv2
    import mmcv

    try:
        with open(path, 'rb') as f:
            return mmcv.imfrombytes(f.read())
    except (OSError, ValueError, cv2.error):
        return None


def rescale_sample(sample, scale: float):
    """A copy of a ``DetDataSample`` with boxes (and masks) scaled by ``scale``."""
    import torch.nn.functional as F

    sample = sample.clone()  # a shallow copy: its fields are replaced, not changed in place
    instances = sample.pred_instances = sample.pred_instances.clone()
    instances.bboxes = instances.bboxes * scale
    if 'masks' in instances and len(instances):
        h, w = instances.masks.shape[-2:]
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        instances.masks = F.interpolate(instances.masks[None].float(), size=size,
                                        mode='nearest')[0].bool()
    return sample


def draw_detections(visualizer, image: np.ndarray, sample, out_file: Optional[str] = None,
                    max_side: int = DEFAULT_MAX_VIS_SIDE) -> np.ndarray:
    """Draw ``sample``'s predicted instances on ``image`` (BGR), at most ``max_side`` wide/high.

    A larger image is drawn on a copy scaled down to ``max_side`` (its boxes
    scaled alike), so that the memory of the drawing is bounded whatever the
    input size; ``max_side=0`` draws at full resolution.

    Args:
        visualizer: mmdet's ``DetLocalVisualizer`` (with ``dataset_meta``).
        image (np.ndarray): The image, BGR, as :func:`read_image` returns it.
        sample (DetDataSample): Predictions in ``image``'s pixels; every
            instance in it is drawn.
        out_file (str, optional): Where to write the picture.
        max_side (int): Longest side of the picture drawn.

    Returns:
        np.ndarray: The picture drawn (RGB).
    """
    import mmcv

    h, w = image.shape[:2]
    if max_side and max(h, w) > max_side:
        scale = max_side / max(h, w)
        image = mmcv.imresize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                              interpolation='area')
        sample = rescale_sample(sample, scale)
    # draw_pred filters scores > thr: every instance given has been kept already
    visualizer.add_datasample(osp.basename(out_file or 'image'), image[..., ::-1], sample,
                              draw_gt=False, pred_score_thr=-1.0, out_file=out_file)
    return visualizer.get_image()


def _readable_batches(paths: List[str], batch_size: int, failed: Dict[str, str], progress):
    """Yield the readable images of ``paths`` as lists of ``(path, image)``, up to
    ``batch_size`` files at a time; unreadable files go to ``failed`` (and count
    as done in ``progress``), batches without a readable image are skipped."""
    for start in range(0, len(paths), batch_size):
        batch = []
        for path in paths[start:start + batch_size]:
            image = read_image(path)
            if image is None:
                failed[path] = 'not an image file that OpenCV can read'
                progress.update()
            else:
                batch.append((path, image))
        if batch:
            yield batch


def _config_in_checkpoint_form(config, cfg_options: Optional[dict], checkpoint: str):
    """(A copy of) ``config`` with ``cfg_options`` merged, set to build the form
    ``checkpoint`` holds (an option asking for the other form is an error, see
    :func:`match_checkpoint_form`), and the checkpoint read."""
    cfg = copy.deepcopy(config) if isinstance(config, Config) else Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    ckpt = read_checkpoint(checkpoint)
    match_checkpoint_form(cfg, ckpt, cfg_options, source=checkpoint)
    return cfg, ckpt


def save_detections(sample, out_dir: str) -> dict:
    """Write ``sample``'s predicted instances to ``out_dir/preds/<stem>.json`` (the stem of
    its ``img_path``), in mmdet's ``DetInferencer`` format: ``labels``, ``scores``,
    ``bboxes`` (and RLE ``masks`` when it has masks); return that dict."""
    import mmengine

    instances = sample.pred_instances.numpy()
    result = dict(labels=instances.labels.tolist(), scores=instances.scores.tolist(),
                  bboxes=instances.bboxes.tolist())
    if 'masks' in instances:
        from mmdet.structures.mask import encode_mask_results
        result['masks'] = [dict(m, counts=m['counts'].decode()) if isinstance(
            m['counts'], bytes) else m for m in encode_mask_results(instances.masks)]
    stem = osp.splitext(osp.basename(sample.img_path))[0]
    mmengine.dump(result, osp.join(out_dir, 'preds', f'{stem}.json'))
    return result


def _detection_visualizer(cfg, dataset_meta: dict):
    """The config's visualizer (mmdet's ``DetLocalVisualizer`` if it names none), under a
    name of its own (mmengine keeps visualizers by name), drawing ``dataset_meta``'s
    classes and palette."""
    from datetime import datetime

    from mmdet.registry import VISUALIZERS

    vis_cfg = dict(cfg.get('visualizer') or dict(type='DetLocalVisualizer'))
    vis_cfg['name'] = f"{vis_cfg.get('name', 'visualizer')}-{datetime.now().timestamp()}"
    vis_cfg['type'] = vis_cfg['type'] if '.' in vis_cfg['type'] else f"mmdet.{vis_cfg['type']}"
    visualizer = VISUALIZERS.build(vis_cfg)
    visualizer.dataset_meta = dataset_meta
    return visualizer


#: Where ``infer_images`` takes the detections from: the checkpoint in PyTorch (mmdet's
#: ``DetInferencer``), or a whole detector exported to ONNX in onnxruntime.
DETECTION_BACKENDS = ('pytorch', 'onnxruntime')


def infer_images(config, checkpoint: str, images: Sequence[str], out_dir: str,
                 score_thr: float = 0.3, device: str = 'cpu', batch_size: Optional[int] = None,
                 max_vis_side: int = DEFAULT_MAX_VIS_SIDE,
                 cfg_options: Optional[dict] = None,
                 backend: str = 'pytorch') -> Dict[str, dict]:
    """Run a detector on ``images``; write the pictures and the predictions drawn in them.

    The backend only changes where the detections come from; the boxes kept,
    the pictures and the prediction files are made alike.

    Args:
        config (str | Config): Detection config (mmcnv2's or any mmdet config);
            its model is built in the form (training or deploy) the
            checkpoint holds.
        checkpoint (str): Its checkpoint (loaded with ``weights_only=True``);
            it must fit the model exactly. With ``backend='onnxruntime'``: the
            whole detector exported from ``config`` to ONNX
            (:func:`mmcnv2.apis.detector_onnx.export_detector_onnx`).
        images (Sequence[str]): Image files or folders (their image files by extension).
        out_dir (str): Pictures go to ``out_dir/vis/<name>``, predictions to
            ``out_dir/preds/<stem>.json`` (mmdet's format: labels, scores,
            bboxes in the input image's pixels).
        score_thr (float): Only boxes scoring above it are drawn and saved.
        device (str): ``'cpu'``, ``'cuda'``, ``'cuda:0'``... (onnxruntime: ``'cpu'``).
        batch_size (int, optional): Images per forward pass; default 1. An
            ONNX file runs in its own (fixed) batch, the last one padded: the
            default takes it, another value is an error.
        max_vis_side (int): Pictures are drawn at most this many pixels wide
            and high (larger inputs on a downscaled copy); 0: full resolution.
        cfg_options (dict, optional): Overrides for the config (as
            ``--cfg-options``); one that asks for the other form than the
            checkpoint's is an error.
        backend (str): One of :data:`DETECTION_BACKENDS`.

    Returns:
        dict: ``predictions`` (``{image: dict(labels, scores, bboxes)}``) and
        ``failed`` (``{file: reason}`` for inputs that could not be read as
        images; the others are processed).

    Raises:
        FileNotFoundError: if an input does not exist.
        ValueError: for bad arguments, a folder without images, or no input at
            all; for an ONNX file that is not a whole detector taking the
            config's test images (see :class:`~mmcnv2.apis.detector_onnx.OnnxDetector`).
    """
    from mmengine.utils import ProgressBar

    paths = list_images(images)
    if isinstance(score_thr, bool) or not 0 <= score_thr <= 1:
        raise ValueError(f'score_thr must be in [0, 1], got {score_thr}')
    if isinstance(max_vis_side, bool) or not isinstance(max_vis_side, int) or max_vis_side < 0:
        raise ValueError(f'max_vis_side must be an int >= 0 (0: full resolution), '
                         f'got {max_vis_side!r}')
    if batch_size is not None and (isinstance(batch_size, bool)
                                   or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f'batch_size must be an int >= 1, got {batch_size!r}')
    if backend not in DETECTION_BACKENDS:
        raise ValueError(f'backend must be one of {DETECTION_BACKENDS}, got {backend!r}')
    if backend == 'pytorch':
        detect, visualizer = _pytorch_detector(config, checkpoint, cfg_options, device)
        batch_size = batch_size or 1
    else:
        if device != 'cpu':
            raise ValueError(f"the onnxruntime backend runs on the CPU: device must be 'cpu', "
                             f'got {device!r}')
        detect = OnnxDetector(checkpoint, config, cfg_options)
        if batch_size not in (None, detect.batch_size):
            raise ValueError(f'{checkpoint} runs batches of {detect.batch_size} image(s) (fixed '
                             f'at export): leave batch_size out, got {batch_size}')
        batch_size = detect.batch_size
        visualizer = _detection_visualizer(detect.cfg, detect.dataset_meta)
    predictions, failed = {}, {}
    progress = ProgressBar(len(paths))
    for batch in _readable_batches(paths, batch_size, failed, progress):
        samples = detect([image for _, image in batch], [path for path, _ in batch])
        for (path, image), sample in zip(batch, samples):
            sample.pred_instances = sample.pred_instances[sample.pred_instances.scores > score_thr]
            sample.set_metainfo(dict(img_path=path))
            predictions[path] = save_detections(sample, out_dir)
            draw_detections(visualizer, image, sample,
                            osp.join(out_dir, 'vis', osp.basename(path)), max_vis_side)
            progress.update()
    return dict(predictions=predictions, failed=failed)


def _pytorch_detector(config, checkpoint: str, cfg_options: Optional[dict], device: str):
    """mmdet's ``DetInferencer`` on ``checkpoint`` (in the form it holds, loaded
    strictly), as a function from a list of BGR images to their ``DetDataSample`` s,
    and its visualizer."""
    from mmdet.apis import DetInferencer

    cfg, ckpt = _config_in_checkpoint_form(config, cfg_options, checkpoint)
    inferencer = DetInferencer(model=cfg, weights=checkpoint, device=device, show_progress=False)
    check_state_dict_fits(inferencer.model, state_dict_of(ckpt), checkpoint)

    def detect(images, names):
        return inferencer(images, batch_size=len(images), return_datasamples=True)['predictions']

    return detect, inferencer.visualizer


def classify_images(config, checkpoint: str, images: Sequence[str], out_dir: str,
                    topk: int = 5, device: str = 'cpu', batch_size: int = 1,
                    vis_side: int = 256, cfg_options: Optional[dict] = None) -> Dict[str, dict]:
    """Run a classifier on ``images``; write a picture and the top-k labels of each.

    The model is mmpretrain's ``ImageClassificationInferencer`` on ``config``,
    built in the form (training or deploy) the checkpoint holds, which must fit
    it exactly.

    Args:
        config (str | Config): Classification config (mmcnv2's or any
            mmpretrain config). Its test pipeline gets the image as read
            (``LoadImageFromFile`` is dropped, as mmpretrain's inferencer does).
        checkpoint (str): Its checkpoint (loaded with ``weights_only=True``).
        images (Sequence[str]): Image files or folders (their image files by
            extension).
        out_dir (str): Pictures go to ``out_dir/vis/<name>`` (the top-k labels
            and scores written on the image), predictions to
            ``out_dir/preds/<stem>.json``.
        topk (int): How many labels to keep, by score (at most the number of
            classes).
        device (str): ``'cpu'``, ``'cuda'``, ``'cuda:0'``...
        batch_size (int): Images per forward pass.
        vis_side (int): The pictures' shorter side, in pixels (small inputs such
            as 32x32 digits are drawn enlarged so that the text fits).
        cfg_options (dict, optional): See :func:`infer_images`.

    Returns:
        dict: ``predictions`` (``{image: dict(labels, scores, classes)}``, best
        first; ``classes`` are names when the checkpoint or config has them,
        else None) and ``failed`` (``{file: reason}`` for inputs that could not
        be read as images; the others are processed).

    Raises:
        FileNotFoundError: if an input does not exist.
        ValueError: for bad arguments, a folder without images, or no input at all.
    """
    import json

    import torch
    from mmengine.registry import DefaultScope
    from mmengine.utils import ProgressBar
    from mmpretrain.apis import ImageClassificationInferencer
    from mmpretrain.visualization import UniversalVisualizer

    paths = list_images(images)
    for name, value, low in (('topk', topk, 1), ('batch_size', batch_size, 1),
                             ('vis_side', vis_side, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f'{name} must be an int >= {low}, got {value!r}')
    cfg, ckpt = _config_in_checkpoint_form(config, cfg_options, checkpoint)
    # mmdet's DetInferencer leaves 'mmdet' as the process's default scope, in which
    # mmpretrain's inferencer would look its transforms up: build it in its own scope
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmpretrain')):
        inferencer = ImageClassificationInferencer(cfg, pretrained=checkpoint, device=device)
    check_state_dict_fits(inferencer.model, state_dict_of(ckpt), checkpoint)
    del ckpt
    classes = inferencer.classes  # the checkpoint's dataset_meta, if it has one
    visualizer = inferencer.visualizer or UniversalVisualizer()  # as mmpretrain's visualize
    predictions, failed = {}, {}
    os.makedirs(osp.join(out_dir, 'vis'), exist_ok=True)
    os.makedirs(osp.join(out_dir, 'preds'), exist_ok=True)
    progress = ProgressBar(len(paths))
    for batch in _readable_batches(paths, batch_size, failed, progress):
        samples = inferencer([image for _, image in batch], batch_size=len(batch),
                             return_datasamples=True)
        for (path, image), sample in zip(batch, samples):
            k = min(topk, len(sample.pred_score))
            scores, labels = torch.topk(sample.pred_score, k)
            labels = labels.tolist()
            predictions[path] = dict(
                labels=labels, scores=scores.tolist(),
                classes=[classes[i] for i in labels] if classes is not None else None)
            stem = osp.splitext(osp.basename(path))[0]
            with open(osp.join(out_dir, 'preds', f'{stem}.json'), 'w') as f:
                json.dump(predictions[path], f, indent=1)
            sample.set_pred_label(torch.tensor(labels))  # drawn best first, with scores
            h, w = image.shape[:2]
            visualizer.visualize_cls(
                image[..., ::-1], sample, classes=classes, draw_gt=False,
                rescale_factor=vis_side / min(h, w),
                out_file=osp.join(out_dir, 'vis', osp.basename(path)))
            progress.update()
    return dict(predictions=predictions, failed=failed)
