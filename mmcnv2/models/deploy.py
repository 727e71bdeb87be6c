"""Whole-model conversion to the deploy (condensed) form."""
from typing import List, Tuple

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
