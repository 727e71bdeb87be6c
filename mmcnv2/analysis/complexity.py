"""FLOPs and parameters counted the way the CondenseNetV2 paper counts them.

The paper's numbers come from the release's ``measure_model``: multiply-adds
counted once; ``Conv2d`` ``Cin*Cout*kh*kw*Hout*Wout/groups``; a training-form
LGC/SFR as its dense convolution divided by its factor; ``Linear``
``weight.numel()`` (bias not counted); ReLU/ReLU6 one op per element; h-swish
only its inner ReLU6 (one per element); ``AvgPool2d`` ``k*k`` per output;
``AdaptiveAvgPool2d`` one per input element; Sigmoid two per element;
normalisation layers no ops (their parameters count). Not counted: the SE
multiply, the SFR add, concatenation, channel shuffles and index operations.
Parameters are the parameters of the modules that run (a training-form
LGC/SFR counts ``1/factor`` of its dense weight).
"""
from typing import Sequence, Tuple

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..models.layers import SparseConvBase

_ELEMENTWISE_OPS = {nn.ReLU: 1, nn.ReLU6: 1, nn.Hardswish: 1, nn.Sigmoid: 2}
# an empty nn.Sequential (e.g. a dense block of depth 0) is a leaf and the identity
_FREE = (_BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.Identity, nn.Dropout, nn.MaxPool2d,
         nn.Sequential)


def _conv_ops(conv: nn.Conv2d, out: torch.Tensor) -> float:
    kh, kw = conv.kernel_size
    return conv.in_channels * conv.out_channels * kh * kw * out.shape[2] * out.shape[3] / conv.groups


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def paper_complexity(model: nn.Module, input_shape: Tuple[int, int, int] = (3, 224, 224),
                     forward=None, live: bool = False,
                     uncounted: Sequence[str] = ()) -> Tuple[float, float]:
    """Count FLOPs (multiply-adds) and parameters of ``model`` the paper's way.

    Args:
        model (nn.Module): The model; run once on a zero input of batch 1.
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

    def sparse_hook(m, inputs, out):
        conv = m.conv
        share = m.density if live else 1 / m.factor
        totals['flops'] += _conv_ops(conv, out) * share
        totals['params'] += conv.weight.numel() * share

    def leaf_hook(m, inputs, out):
        x = inputs[0]
        if type(m).__name__ in uncounted:
            pass
        elif isinstance(m, nn.Conv2d):
            totals['flops'] += _conv_ops(m, out)
        elif isinstance(m, nn.Linear):
            totals['flops'] += m.weight.numel()
        elif type(m) in _ELEMENTWISE_OPS:
            totals['flops'] += _ELEMENTWISE_OPS[type(m)] * x[0].numel()
        elif isinstance(m, nn.AvgPool2d):
            ks = m.kernel_size
            totals['flops'] += out[0].numel() * (ks * ks if isinstance(ks, int) else ks[0] * ks[1])
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            totals['flops'] += x[0].numel()
        elif not isinstance(m, _FREE):
            raise TypeError(f'paper_complexity: no counting rule for {type(m).__name__}')
        totals['params'] += _params(m)

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


def _arguments(cls):
    import inspect
    return inspect.signature(cls.__init__).parameters if cls is not None else {}


def config_complexity(cfg, shape=(224, 224), with_mmengine: bool = True) -> dict:
    """FLOPs / params of a config's model in deploy form, the paper's way and mmengine's.

    Args:
        cfg (mmengine.Config): An mmpretrain or mmdet config.
        shape (tuple[int, int]): Input ``(H, W)``.
        with_mmengine (bool): Also run mmengine's ``get_model_complexity_info``.

    Returns:
        dict: ``paper_flops``, ``paper_params`` and, if asked,
        ``mmengine_flops``, ``mmengine_params``.
    """
    import copy

    from mmengine.registry import DefaultScope, MODELS

    cfg = copy.deepcopy(cfg)
    model_cfg = cfg.model
    backbone = model_cfg.get('backbone', model_cfg)
    backbone.pop('init_cfg', None)
    scope = cfg.get('default_scope', 'mmpretrain')
    with DefaultScope.overwrite_default_scope(scope):
        # count the condensed model (the deploy form), never masked dense convs
        with MODELS.switch_scope_and_registry(scope) as registry:
            for part in (backbone, model_cfg.get('head')):
                if part is not None and 'deploy' in _arguments(registry.get(part['type'])):
                    part['deploy'] = True
        model = MODELS.build(model_cfg)
    model.eval()
    c = backbone.get('in_channels', 3)
    uncounted = getattr(getattr(model, 'backbone', model), 'paper_uncounted', ())
    flops, params = paper_complexity(model, (c, *shape), uncounted=uncounted)
    result = dict(paper_flops=flops, paper_params=params)
    if with_mmengine:
        from mmengine.analysis import get_model_complexity_info
        from mmengine.logging import MMLogger

        # mmengine warns once per operator it has no rule for (index_add, BN...)
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel('ERROR')
        try:
            info = get_model_complexity_info(model, input_shape=(c, *shape),
                                             show_table=False, show_arch=False)
        finally:
            logger.setLevel(level)
        result.update(mmengine_flops=info['flops'], mmengine_params=info['params'])
    return result
