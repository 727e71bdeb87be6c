"""FLOPs and parameters counted the way the CondenseNetV2 paper counts them.

The paper's numbers come from the release's ``measure_model``: multiply-adds
counted once; ``Conv2d`` ``Cin*Cout*kh*kw*Hout*Wout/groups``; a training-form
LGC/SFR as its dense convolution divided by its factor; ``Linear``
``weight.numel()`` per input row (bias not counted); ReLU/ReLU6 one op per
element; h-swish only its inner ReLU6 (one per element); ``AvgPool2d`` ``k*k``
per output; ``AdaptiveAvgPool2d`` one per input element; Sigmoid two per
element; normalisation layers no ops (their parameters count). Not counted:
the SE multiply, the SFR add, concatenation, channel shuffles and index
operations (and a detector's RoIAlign, which samples features). The model runs
on one image; a detector's RoI head runs on every proposal, each counted.
Parameters are the parameters of the modules that run (a training-form
LGC/SFR counts ``1/factor`` of its dense weight), each counted once however
often its module runs (RetinaNet's head runs once per FPN level: its FLOPs
count five times, its parameters once).
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..models.build import build_model
from ..models.forms import DEPLOY
from ..models.layers import SparseConvBase

_ELEMENTWISE_OPS = {nn.ReLU: 1, nn.ReLU6: 1, nn.Hardswish: 1, nn.Sigmoid: 2}
# an empty nn.Sequential (e.g. a dense block of depth 0) is a leaf and the identity
_FREE = (_BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.Identity, nn.Dropout, nn.MaxPool2d,
         nn.Sequential)
#: Free too, by type name (mmcv's op, imported only where a detector needs it): RoIAlign
#: samples features, as the index operations the paper's rules do not count.
_FREE_NAMES = ('RoIAlign', )


def _conv_ops(conv: nn.Conv2d, out: torch.Tensor) -> float:
    """Multiply-adds of ``conv`` producing ``out`` (every output map: the model runs on one
    image, but a detector's RoI head convolves one map per RoI)."""
    kh, kw = conv.kernel_size
    return conv.in_channels * kh * kw * out.numel() / conv.groups


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def paper_complexity(model: nn.Module, input_shape: Tuple[int, int, int] = (3, 224, 224),
                     forward=None, live: bool = False,
                     uncounted: Sequence[str] = ()) -> Tuple[float, float]:
    """Count FLOPs (multiply-adds) and parameters of ``model`` the paper's way.

    Args:
        model (nn.Module): The model; run once on a zero input of batch 1.
            A module that runs several times (a shared head) adds its FLOPs at
            every call and its parameters once; one applied to many rows of
            that one image (a detector's RoI head, on every proposal) counts
            every row.
        input_shape (tuple): ``(C, H, W)`` of the input.
        forward (callable, optional): ``forward(model, x)`` to run instead of
            ``model(x)`` (e.g. ``mode='tensor'`` for mmpretrain classifiers).
        live (bool): Count a training-form LGC/SFR at its current density
            instead of its final ``1/factor`` (what it costs at this point of
            training). Defaults to False.
        uncounted (Sequence[str]): Names of module types that cost nothing in
            this count (e.g. ``('Hardswish', 'Hardsigmoid')`` for ShuffleNetV2+,
            whose published figures leave megvii's functional h-swish out).

    Returns:
        tuple[float, float]: FLOPs and parameters.

    Raises:
        TypeError: if a module that runs is of a type the paper's rules do not
            cover (nothing is silently left out).

    Example:
        >>> from mmcnv2.models import CondenseNetV2
        >>> flops, params = paper_complexity(CondenseNetV2('a', deploy=True))
        >>> round(flops / 1e6, 2), params  # the backbone alone, without the head
        (44.26, 466216.0)
    """
    totals = {'flops': 0.0, 'params': 0.0}
    handles = []
    counted = set()  # modules whose parameters are counted already

    def add_params(m, params):
        if id(m) not in counted:
            counted.add(id(m))
            totals['params'] += params

    def sparse_hook(m, inputs, out):
        conv = m.conv
        share = m.density if live else 1 / m.factor
        totals['flops'] += _conv_ops(conv, out) * share
        add_params(m, conv.weight.numel() * share)

    def leaf_hook(m, inputs, out):
        x = inputs[0]
        if type(m).__name__ in uncounted:
            pass
        elif isinstance(m, nn.Conv2d):
            totals['flops'] += _conv_ops(m, out)
        elif isinstance(m, nn.Linear):
            totals['flops'] += m.weight.numel() * (x.numel() // x.shape[-1])  # every row
        elif type(m) in _ELEMENTWISE_OPS:
            totals['flops'] += _ELEMENTWISE_OPS[type(m)] * x.numel()
        elif isinstance(m, nn.AvgPool2d):
            ks = m.kernel_size
            totals['flops'] += out.numel() * (ks * ks if isinstance(ks, int) else ks[0] * ks[1])
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            totals['flops'] += x.numel()
        elif not isinstance(m, _FREE) and type(m).__name__ not in _FREE_NAMES:
            raise TypeError(f'paper_complexity: no counting rule for {type(m).__name__}')
        add_params(m, _params(m))

    def visit(module):
        for child in module.children():
            if isinstance(child, SparseConvBase) and not child.deploy:
                handles.append(child.register_forward_hook(sparse_hook))
                for sub in (child.norm, child.act):
                    handles.append(sub.register_forward_hook(leaf_hook))
            elif next(child.children(), None) is None:
                handles.append(child.register_forward_hook(leaf_hook))
            else:
                visit(child)
                if _params(child):
                    raise TypeError(f'paper_complexity: {type(child).__name__} holds parameters '
                                    'outside its submodules; no counting rule for it')

    visit(model)
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        x = torch.zeros(1, *input_shape, device=param.device if param is not None else 'cpu')
        with torch.no_grad():
            forward(model, x) if forward is not None else model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return totals['flops'], totals['params']


def _size_hw(size) -> Tuple[int, int]:
    """``(H, W)`` of an mmcv-style size: an int, or ``(W, H)``."""
    return (size, size) if isinstance(size, int) else (int(size[1]), int(size[0]))


#: Input of the backbone FLOPs of the paper's Table 7 ("calculated with 224x224
#: input size"), and the default when a config names no test size.
BACKBONE_SHAPE = (224, 224)

#: Datasets whose images all have one size (mmpretrain's CIFAR: 32 x 32).
_FIXED_SIZE_DATASETS = {'CIFAR10': (32, 32), 'CIFAR100': (32, 32)}


def config_input_shape(cfg) -> Tuple[Optional[Tuple[int, int]], str]:
    """The input ``(H, W)`` a config's model sees at test time, and where it comes from.

    The last ``Resize`` (``scale``, given as ``(W, H)``) or ``CenterCrop``
    (``crop_size``) of the test pipeline, padded up to the data preprocessor's
    ``pad_size_divisor`` (mmdet); with ``keep_ratio`` that is the largest input,
    as real images fit inside it. A fixed-size dataset (CIFAR) gives its size.

    Returns:
        tuple: ``(H, W)`` or None when the config does not say, and a sentence
        saying where the size comes from.

    Example:
        >>> from mmengine.config import Config
        >>> shape, source = config_input_shape(Config(dict(
        ...     model=dict(data_preprocessor=dict(pad_size_divisor=32)),
        ...     test_dataloader=dict(dataset=dict(pipeline=[
        ...         dict(type='Resize', scale=(1333, 800), keep_ratio=True)])))))
        >>> shape
        (800, 1344)
        >>> print(source)  # doctest: +NORMALIZE_WHITESPACE
        the test pipeline's Resize scale 1333x800 (keep_ratio: real images are at most
        this size), padded to a multiple of 32 as the data preprocessor does
    """
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    pipeline = dataset.get('pipeline') or cfg.get('test_pipeline') or []
    shape, source = None, None
    for transform in pipeline:
        kind = str(transform.get('type', ''))
        if kind.split('.')[-1] == 'Resize' and transform.get('scale') is not None:
            shape = _size_hw(transform['scale'])
            source = f"the test pipeline's Resize scale {shape[1]}x{shape[0]}"
            if transform.get('keep_ratio'):
                source += ' (keep_ratio: real images are at most this size)'
        elif kind.split('.')[-1] == 'CenterCrop' and transform.get('crop_size') is not None:
            shape = _size_hw(transform['crop_size'])
            source = f"the test pipeline's CenterCrop {shape[1]}x{shape[0]}"
    if shape is None:
        fixed = _FIXED_SIZE_DATASETS.get(str(dataset.get('type', '')))
        if fixed is None:
            return None, 'the config names no test size (no Resize or CenterCrop in its ' \
                         'test pipeline)'
        return fixed, f"the size of every {dataset['type']} image"
    divisor = ((cfg.get('model') or {}).get('data_preprocessor') or {}).get('pad_size_divisor')
    if divisor and divisor > 1:
        padded = tuple(-(-side // divisor) * divisor for side in shape)
        if padded != shape:
            shape = padded
            source += f', padded to a multiple of {divisor} as the data preprocessor does'
    return shape, source


def build_deploy_model(cfg):
    """Build a config's model in deploy form (condensed LGC/SFR), without loading weights:
    the condensed model is counted, never masked dense convolutions.

    Returns:
        nn.Module: The model, in eval mode.
    """
    return build_model(cfg.model, cfg.get('default_scope', 'mmpretrain'), form=DEPLOY).eval()


def _is_detector(model) -> bool:
    try:
        from mmdet.models.detectors import BaseDetector
    except ImportError:  # mmdet is optional for classification
        return False
    return isinstance(model, BaseDetector)


def _two_stage_forward(proposals: int):
    """``forward(model, x)`` of an mmdet two-stage detector for counting: backbone, neck,
    RPN head, and the RoI head on ``proposals`` boxes (what the RPN passes on at most;
    its cost does not depend on where the boxes are)."""
    def forward(model, x):
        from mmengine.structures import InstanceData

        feats = model.extract_feat(x)
        model.rpn_head(feats)
        boxes = x.new_tensor([[0, 0, x.shape[3], x.shape[2]]]).repeat(proposals, 1)
        return model.roi_head.forward(feats, [InstanceData(bboxes=boxes)])

    return forward


class _Forward(nn.Module):
    """``model`` called through ``forward(model, x)``, for mmengine's counter."""

    def __init__(self, model: nn.Module, forward):
        super().__init__()
        self.model = model
        self._forward = forward

    def forward(self, x):
        return self._forward(self.model, x)


def config_complexity(cfg, shape: Optional[Tuple[int, int]] = None,
                      with_mmengine: bool = True) -> dict:
    """FLOPs / params of a config's model in deploy form, the paper's way and mmengine's.

    Args:
        cfg (mmengine.Config): An mmpretrain or mmdet config.
        shape (tuple[int, int], optional): Input ``(H, W)``; defaults to the
            config's test size (:func:`config_input_shape`), else 224 x 224.
        with_mmengine (bool): Also run mmengine's ``get_model_complexity_info``.

    Returns:
        dict: ``shape`` (the ``(H, W)`` counted) and ``shape_source`` (where it
        comes from); ``paper_flops``, ``paper_params`` (the whole model) and,
        if asked, ``mmengine_flops``, ``mmengine_params``. For a detector also
        ``backbone_flops``, ``backbone_params``: its backbone alone at
        224 x 224 (:data:`BACKBONE_SHAPE`), the paper's count. The paper's
        Table 7 lists "backbone FLOPs" at 224 x 224 too, but its figures are
        those of the ImageNet classifiers, classification head included. For
        a two-stage detector also ``proposals``: its RoI head is counted on
        that many boxes, the RPN's ``max_per_img`` at test time.
    """
    if shape is None:
        shape, source = config_input_shape(cfg)
        if shape is None:
            shape, source = BACKBONE_SHAPE, source + ': 224x224'
    else:
        source = 'given'
    model = build_deploy_model(cfg)
    backbone_cfg = cfg.model.get('backbone', cfg.model)
    c = backbone_cfg.get('in_channels', 3)
    backbone = getattr(model, 'backbone', model)
    uncounted = getattr(backbone, 'paper_uncounted', ())
    forward, extra = None, {}
    if getattr(model, 'with_rpn', False) and getattr(model, 'roi_head', None) is not None:
        extra['proposals'] = int(model.rpn_head.test_cfg.max_per_img)
        forward = _two_stage_forward(extra['proposals'])
    flops, params = paper_complexity(model, (c, *shape), forward, uncounted=uncounted)
    result = dict(shape=tuple(shape), shape_source=source, paper_flops=flops,
                  paper_params=params, **extra)
    if _is_detector(model):
        flops, params = paper_complexity(backbone, (c, *BACKBONE_SHAPE), uncounted=uncounted)
        result.update(backbone_flops=flops, backbone_params=params)
    if with_mmengine:
        from mmengine.analysis import get_model_complexity_info
        from mmengine.logging import MMLogger

        # mmengine warns once per operator it has no rule for (index_add, BN...)
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel('ERROR')
        try:
            info = get_model_complexity_info(
                model if forward is None else _Forward(model, forward), input_shape=(c, *shape),
                show_table=False, show_arch=False)
        finally:
            logger.setLevel(level)
        result.update(mmengine_flops=info['flops'], mmengine_params=info['params'])
    return result

