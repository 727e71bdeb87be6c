"""Whole-model conversion to the deploy (condensed) form."""
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.model import is_model_wrapper

from .layers import SparseConvBase


def sparse_layers(model: nn.Module) -> List[Tuple[str, SparseConvBase]]:
    """``(name, layer)`` of every LGC / SFR layer of ``model`` (unwrapped)."""
    if is_model_wrapper(model):
        model = model.module
    return [(n, m) for n, m in model.named_modules() if isinstance(m, SparseConvBase)]


def switch_model_to_deploy(model: nn.Module) -> int:
    """Condense every LGC / SFR of any model (classifier, detector, backbone) in place.

    Returns:
        int: The number of layers converted.

    Raises:
        ValueError: if a layer has not finished sparsifying (nothing is
            converted then) or the model has no sparse layers.
    """
    layers = sparse_layers(model)
    if not layers:
        raise ValueError(f'{type(model).__name__} has no LGC/SFR layers to convert')
    todo = [(n, m) for n, m in layers if not m.deploy]
    unfinished = [(n, m) for n, m in todo if not m.is_fully_sparse]
    if unfinished:
        name, m = unfinished[0]
        raise ValueError(
            f'cannot convert to deploy form: {len(unfinished)} sparse layers have not finished '
            f'sparsifying, e.g. {name} is at stage {int(m.stage)} of {m.num_stages}; train '
            'through the sparsification schedule first')
    for _, m in todo:
        m.switch_to_deploy()
    root = model.module if is_model_wrapper(model) else model
    for m in root.modules():
        if isinstance(getattr(m, 'deploy', None), bool) and not m.deploy:
            if hasattr(m, 'switch_to_deploy') and not hasattr(m, 'sparse_layers'):
                m.switch_to_deploy()  # e.g. a head with a condensed classifier
            m.deploy = True
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
            Python with a warning), ``'cpp'``, ``'torchscript'`` or
            ``'python'``; ``'torchscript'`` is bit-identical to ``'python'``,
            ``'cpp'`` equal up to float rounding (its 3x3 kernel). See
            :class:`FusedSFRDenseStage`.

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
    from .backbones.base import SparseBackbone
    from .backbones.sfr_shufflenet_v2 import ShuffleNetFamily
    from .layers import DenseStage, FusedSFRDenseStage
    from .layers.fused_dense_stage import check_backend
    from .layers.inference_only import make_inference_only

    check_backend(backend)  # also where the model has no dense stage
    root = model.module if is_model_wrapper(model) else model
    training = [n for n, m in sparse_layers(root) if not m.deploy]
    if training:
        raise ValueError(f'fuse_for_inference needs the deploy form; {training[0]} and '
                         f'{len(training) - 1} more sparse layers are in training form: call '
                         'switch_model_to_deploy (or build with deploy=True) first')
    root.eval()
    for parent in list(root.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, DenseStage) and len(child.layers) and all(
                    hasattr(layer, 'sfr') for layer in child.layers):  # depth 0: nothing to fuse
                setattr(parent, name, FusedSFRDenseStage(
                    child, FusedSFRDenseStage.DENSE_BELOW if dense_below is None else dense_below,
                    backend=backend))
    for m in root.modules():
        if isinstance(m, ShuffleNetFamily):
            m.to(memory_format=torch.channels_last)
        if isinstance(m, SparseBackbone):
            make_inference_only(m)
    return make_inference_only(root)
