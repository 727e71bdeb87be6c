"""The walkers that convert a module tree: to the deploy form, and to the fused form.

Each module that has another form owns its conversion, and says so with a
method; a walker calls the method of the first module on every path from the
root that has one, and that module converts its own subtree (as timm's
``reparameterize_model`` does with ``reparameterize()``):

* ``switch_to_deploy()`` converts the module in place to its deploy
  (condensed) form (:class:`~mmcnv2.models.layers.LearnedGroupConv`,
  :class:`~mmcnv2.models.layers.SparseFeatureReactivation`, the sparse
  backbones, ``CondenseNetClsHead``, and re-parameterisable modules of other
  codebases alike); modules whose ``deploy`` flag is already True are left
  alone;
* ``fuse_for_inference(dense_below, backend)`` returns the module's
  inference-only form, which replaces it in its parent (itself where it is
  converted in place, e.g. a backbone).
"""
from typing import List, Optional, Tuple

import torch.nn as nn
from mmengine.model import is_model_wrapper

from .sparse_conv import SparseConvBase


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DataParallel / DDP wrapper, else ``model``."""
    return model.module if is_model_wrapper(model) else model


def sparse_layers(model: nn.Module) -> List[Tuple[str, SparseConvBase]]:
    """``(name, layer)`` of every LGC / SFR layer of ``model`` (unwrapped)."""
    return [(n, m) for n, m in unwrap(model).named_modules() if isinstance(m, SparseConvBase)]


def unfinished_sparsification(model: nn.Module) -> Optional[str]:
    """What keeps ``model``'s training-form LGC / SFR layers from their deploy form, or
    None when every one is fully sparse.

    Example:
        >>> from mmcnv2.models import LearnedGroupConv
        >>> lgc = LearnedGroupConv(16, 8, condense_factor=4, groups=2)
        >>> unfinished_sparsification(lgc)
        '1 sparse layers have not finished sparsifying, e.g. (the model) is at stage 0 of 3'
        >>> lgc.sparsify(1.0)  # the last stage
        3
        >>> unfinished_sparsification(lgc) is None
        True
    """
    unfinished = [(n or '(the model)', m) for n, m in sparse_layers(model)
                  if not m.deploy and not m.is_fully_sparse]
    if not unfinished:
        return None
    name, m = unfinished[0]
    return (f'{len(unfinished)} sparse layers have not finished sparsifying, e.g. {name} is at '
            f'stage {int(m.stage)} of {m.num_stages}')


def check_deployable(model: nn.Module) -> List[Tuple[str, SparseConvBase]]:
    """The sparse layers of ``model`` still in training form, all fully sparse.

    Raises:
        ValueError: if the model has no sparse layers, or one of them has not
            finished sparsifying.
    """
    layers = sparse_layers(model)
    if not layers:
        raise ValueError(f'{type(unwrap(model)).__name__} has no LGC/SFR layers to convert')
    unfinished = unfinished_sparsification(model)
    if unfinished:
        raise ValueError(f'cannot convert to deploy form: {unfinished}; train through the '
                         'sparsification schedule first')
    return [(n, m) for n, m in layers if not m.deploy]


def switch_module_to_deploy(module: nn.Module) -> None:
    """Convert ``module`` to its deploy form in place: call its ``switch_to_deploy()``
    if it has one (and is not yet deployed), else walk its children."""
    if getattr(module, 'deploy', None) is True:
        return
    convert = getattr(module, 'switch_to_deploy', None)
    if callable(convert):
        convert()
    else:
        switch_children_to_deploy(module)


def switch_children_to_deploy(module: nn.Module) -> None:
    """:func:`switch_module_to_deploy` on every child of ``module``."""
    for child in module.children():
        switch_module_to_deploy(child)


def fuse_module(module: nn.Module, dense_below: int, backend: str) -> nn.Module:
    """The inference-only form of ``module``: what its ``fuse_for_inference`` returns
    if it has one, else ``module`` with its children fused."""
    fuse = getattr(module, 'fuse_for_inference', None)
    if callable(fuse):
        return fuse(dense_below, backend)
    fuse_children(module, dense_below, backend)
    return module


def fuse_children(module: nn.Module, dense_below: int, backend: str) -> None:
    """Replace every child of ``module`` by its :func:`fuse_module` form."""
    for name, child in list(module.named_children()):
        fused = fuse_module(child, dense_below, backend)
        if fused is not child:
            setattr(module, name, fused)
