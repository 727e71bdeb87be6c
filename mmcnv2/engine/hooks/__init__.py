from .checkpoint_hook import AtomicCheckpointHook, use_atomic_checkpoint_hook
from .mmcv_ops_check_hook import MMCVOpsCheckHook, use_mmcv_ops_check_hook
from .progress_bar_hook import ProgressBarHook
from .sparsify_hook import SparsifyHook

__all__ = [
    'AtomicCheckpointHook', 'MMCVOpsCheckHook', 'ProgressBarHook', 'SparsifyHook',
    'use_atomic_checkpoint_hook', 'use_mmcv_ops_check_hook'
]
