"""Build a config's model: the one place that turns a model config into a module.

Every tool that builds a model to load weights into it, count it or time it
does the same three things: it copies the model config, drops the backbone's
``init_cfg`` (the weights come from a checkpoint, or do not matter), and builds
it under the config's ``default_scope``; and where a checkpoint's form is
known, it sets ``deploy`` of the mmcnv2 backbone and head first.
"""
import copy
import inspect
from typing import Optional

import torch.nn as nn
from mmengine.registry import MODELS, DefaultScope

from .forms import DEPLOY, TRAINING


def _parts(model_cfg: dict) -> list:
    """The module configs that may take ``deploy`` / ``init_cfg``: the backbone and head of
    a whole model, or the model itself when it is a bare backbone."""
    if 'backbone' not in model_cfg:
        return [model_cfg]
    return [model_cfg[k] for k in ('backbone', 'head') if isinstance(model_cfg.get(k), dict)]


def mmcnv2_class(module_cfg: dict, scope: str) -> Optional[type]:
    """The mmcnv2 class a module config builds, or None for other classes.

    Example:
        >>> import mmcnv2
        >>> mmcnv2_class(dict(type='CondenseNetV2'), 'mmpretrain').__name__
        'CondenseNetV2'
        >>> mmcnv2_class(dict(type='ResNet'), 'mmpretrain') is None
        True
    """
    kind = module_cfg.get('type')
    if not isinstance(kind, type):
        with MODELS.switch_scope_and_registry(scope) as registry:
            kind = registry.get(kind)
    return kind if kind is not None and kind.__module__.startswith('mmcnv2.') else None


def set_model_cfg_form(model_cfg: dict, scope: str, form: str):
    """Set ``deploy`` of the mmcnv2 backbone and head of ``model_cfg`` for ``form``.

    Parts of other codebases, and parts without a ``deploy`` argument, are
    left as they are.

    Args:
        model_cfg (dict): A model config (changed in place).
        scope (str): The registry scope it builds in.
        form (str): ``'training'`` or ``'deploy'``.

    Example:
        >>> model = dict(type='ImageClassifier', backbone=dict(type='CondenseNet', arch='c'),
        ...              head=dict(type='CondenseNetClsHead', num_classes=10, in_channels=2064))
        >>> set_model_cfg_form(model, 'mmpretrain', 'deploy')
        >>> model['backbone']['deploy'], model['head']['deploy']
        (True, True)
    """
    if form not in (TRAINING, DEPLOY):
        raise ValueError(f"form must be '{TRAINING}' or '{DEPLOY}', got {form!r}")
    for part in _parts(model_cfg):
        cls = mmcnv2_class(part, scope)
        if cls is not None and 'deploy' in inspect.signature(cls).parameters:
            part['deploy'] = form == DEPLOY


def build_model(model_cfg: dict, scope: str, form: Optional[str] = None,
                pretrained: bool = False) -> nn.Module:
    """Build a copy of ``model_cfg`` under ``scope``.

    Args:
        model_cfg (dict): A model config (mmpretrain classifier, mmdet
            detector, or a bare backbone); it is not changed.
        scope (str): The registry scope, e.g. a config's ``default_scope``.
        form (str, optional): Build the mmcnv2 parts in this form
            (:func:`set_model_cfg_form`); None: as the config says.
        pretrained (bool): Keep the backbone's ``init_cfg``; by default it is
            dropped, as the weights come from elsewhere.

    Returns:
        nn.Module: The model, as built (training mode).

    Example:
        >>> import mmcnv2
        >>> cfg = dict(type='CondenseNetV2', arch='a', init_cfg=dict(
        ...     type='Pretrained', checkpoint='no/such/file.pth'))
        >>> backbone = build_model(cfg, 'mmpretrain', form='deploy')  # a bare backbone
        >>> backbone.deploy, backbone.init_cfg, 'init_cfg' in cfg
        (True, None, True)
    """
    model_cfg = copy.deepcopy(model_cfg)
    backbone = model_cfg.get('backbone', model_cfg)
    if not pretrained and isinstance(backbone, dict):
        backbone.pop('init_cfg', None)
    if form is not None:
        set_model_cfg_form(model_cfg, scope, form)
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(model_cfg)
