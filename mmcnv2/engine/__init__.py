from ..registry import register
from .hooks import (AtomicCheckpointHook, MMCVOpsCheckHook, SparsifyHook,
                    use_atomic_checkpoint_hook, use_mmcv_ops_check_hook)

register('HOOKS')(AtomicCheckpointHook)
register('HOOKS')(MMCVOpsCheckHook)
register('HOOKS')(SparsifyHook)

__all__ = [
    'AtomicCheckpointHook', 'MMCVOpsCheckHook', 'SparsifyHook', 'use_atomic_checkpoint_hook',
    'use_mmcv_ops_check_hook'
]
