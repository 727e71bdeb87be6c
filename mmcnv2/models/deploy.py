"""Whole-model conversions: to the deploy (condensed) form, and to the fused inference form.

Both walk the model and let every module convert itself (see
:mod:`mmcnv2.models.layers.conversion`).
"""
from typing import Optional

import torch.nn as nn

from .layers import (FusedSFRDenseStage, check_deployable, fuse_module, make_inference_only,
                     sparse_layers, switch_module_to_deploy, unfinished_sparsification, unwrap)
from .layers.fused_dense_stage import check_backend

__all__ = [
    'fuse_for_inference', 'sparse_layers', 'switch_model_to_deploy', 'unfinished_sparsification'
]


def switch_model_to_deploy(model: nn.Module) -> int:
    """Condense every LGC / SFR of any model (classifier, detector, backbone) in place.

    Every module with a deploy form converts itself (its ``switch_to_deploy()``,
    see :mod:`mmcnv2.models.layers.conversion`): the sparse layers, the
    backbones that hold them, and heads with a condensed classifier.

    Returns:
        int: The number of layers converted.

    Raises:
        ValueError: if a layer has not finished sparsifying (nothing is
            converted then) or the model has no sparse layers.
    """
    root = unwrap(model)
    todo = check_deployable(root)
    switch_module_to_deploy(root)
    return len(todo)


def fuse_for_inference(model: nn.Module, dense_below: Optional[int] = None,
                       backend: str = 'auto') -> nn.Module:
    """The fastest CPU form of a deploy-form model, for inference only (in place).

    Every CondenseNetV2 dense stage becomes a :class:`FusedSFRDenseStage`
    (BN folded, one preallocated buffer per stage, in-place reactivation, dense
    or batched products chosen by group size, channels-last 3x3 convolutions);
    SFR-ShuffleNetV2(+) backbones are put in channels-last memory format (their
    depthwise convolutions and max pool run much faster so). The result
    computes the same outputs as the deploy form, at any batch size including
    0; its state dict is not a checkpoint format: keep the deploy-form
    checkpoint and fuse after loading.

    The result is inference-only, whatever its architecture (see
    :mod:`mmcnv2.models.layers.inference_only`): it is in eval mode with its
    parameters frozen, and the model, every sparse backbone in it and every
    fused stage raise ``RuntimeError`` on ``.train()`` and on calls with
    autograd enabled where an input or a parameter requires grad (run it under
    ``torch.no_grad()`` or ``torch.inference_mode()``), instead of training
    with folded BatchNorm or returning outputs without gradients.

    Args:
        model (nn.Module): A classifier, detector or backbone whose LGC/SFR
            layers are all in deploy form.
        dense_below (int, optional): See :class:`FusedSFRDenseStage`; None
            uses its measured default.
        backend (str): What runs the loop of the fused dense stages:
            ``'auto'`` (C++ when mmcnv2's compiled operators are built, else
            Python with a warning), ``'cpp'``, ``'torchscript'``, ``'python'``
            or ``'onnx'`` (standard operators only, no in-place writes: the
            form ONNX export traces); ``'torchscript'`` is bit-identical to
            ``'python'``, ``'cpp'`` and ``'onnx'`` equal up to float rounding.
            See :class:`FusedSFRDenseStage`.

    Returns:
        nn.Module: ``model``, fused.

    Raises:
        ValueError: if a sparse layer is still in training form, or
            ``backend`` is not one of :attr:`FusedSFRDenseStage.BACKENDS`.
        RuntimeError: if ``backend='cpp'`` and the extension is not built.

    Example:
        >>> import torch
        >>> from mmcnv2.models import CondenseNetV2
        >>> net = CondenseNetV2('a', deploy=True).eval()
        >>> x = torch.randn(1, 3, 64, 64)
        >>> with torch.no_grad():
        ...     y = net(x)[0]
        ...     fused = fuse_for_inference(net)
        ...     torch.allclose(fused(x)[0], y, rtol=1e-4, atol=1e-5)
        True
    """
    check_backend(backend)  # also where the model has no dense stage
    root = unwrap(model)
    training = [n for n, m in sparse_layers(root) if not m.deploy]
    if training:
        raise ValueError(f'fuse_for_inference needs the deploy form; {training[0]} and '
                         f'{len(training) - 1} more sparse layers are in training form: call '
                         'switch_model_to_deploy (or build with deploy=True) first')
    root.eval()
    dense_below = FusedSFRDenseStage.DENSE_BELOW if dense_below is None else dense_below
    return make_inference_only(fuse_module(root, dense_below, backend))
