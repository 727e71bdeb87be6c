"""Strict loading of ImageNet weights into a sparse backbone (training or deploy form).

It is the backbones' own initialisation (``init_cfg=dict(type='Pretrained', ...)``),
so it lives with the models, in :mod:`mmcnv2.models.pretrained`; its names are
also reachable from here, next to the other checkpoint functions.
"""
from ..models.pretrained import (PretrainedMismatchError, PretrainedNotFoundError,
                                 backbone_state_dict, imagenet_config_of,
                                 load_pretrained_backbone, missing_pretrained_message)

__all__ = [
    'PretrainedMismatchError', 'PretrainedNotFoundError', 'backbone_state_dict',
    'imagenet_config_of', 'load_pretrained_backbone', 'missing_pretrained_message'
]
