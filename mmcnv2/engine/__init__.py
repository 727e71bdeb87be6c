from .hooks import (AtomicCheckpointHook, MMCVOpsCheckHook, ProgressBarHook, SparsifyHook,
                    use_atomic_checkpoint_hook, use_mmcv_ops_check_hook)

__all__ = [
    'AtomicCheckpointHook', 'MMCVOpsCheckHook', 'ProgressBarHook', 'SparsifyHook',
    'use_atomic_checkpoint_hook', 'use_mmcv_ops_check_hook'
]
