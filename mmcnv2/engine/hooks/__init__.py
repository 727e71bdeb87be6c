from .mmcv_ops_check_hook import MMCVOpsCheckHook, use_mmcv_ops_check_hook
from .sparsify_hook import SparsifyHook

__all__ = ['MMCVOpsCheckHook', 'SparsifyHook', 'use_mmcv_ops_check_hook']
