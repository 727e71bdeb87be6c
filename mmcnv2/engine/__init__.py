from ..registry import register
from .hooks import MMCVOpsCheckHook, SparsifyHook, use_mmcv_ops_check_hook

register('HOOKS')(MMCVOpsCheckHook)
register('HOOKS')(SparsifyHook)

__all__ = ['MMCVOpsCheckHook', 'SparsifyHook', 'use_mmcv_ops_check_hook']
