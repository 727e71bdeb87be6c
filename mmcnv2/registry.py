"""Registries of mmcnv2 and registration into mmpretrain and mmdet.

mmcnv2 has its own scope (``type='mmcnv2.CondenseNetV2'`` works from any
scope, as in mmyolo/mmrazor), and every model and hook is also registered in
the mmpretrain and mmdet registries so that plain ``type='CondenseNetV2'``
builds under ``default_scope='mmpretrain'`` and ``default_scope='mmdet'``.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmcnv2')
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='mmcnv2')
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='mmcnv2')


def _downstream(kind):
    """The registries of the codebases we plug into, for ``kind``."""
    from mmpretrain import registry as pretrain
    regs = [getattr(pretrain, kind)]
    try:
        from mmdet import registry as det
    except ImportError:  # mmdet is optional for classification-only use
        return regs
    regs.append(getattr(det, kind))
    return regs


def register(kind: str, codebases=('mmpretrain', 'mmdet')):
    """Class decorator: register in mmcnv2's ``kind`` registry and downstream ones.

    Args:
        kind (str): ``'MODELS'``, ``'HOOKS'`` or ``'DATASETS'``.
        codebases (tuple[str]): Downstream codebases to register into too.
    """
    own = {'MODELS': MODELS, 'HOOKS': HOOKS, 'DATASETS': DATASETS}[kind]

    def wrap(cls):
        own.register_module(module=cls)
        for reg in _downstream(kind):
            if reg.scope in codebases:
                reg.register_module(module=cls)
        return cls

    return wrap
