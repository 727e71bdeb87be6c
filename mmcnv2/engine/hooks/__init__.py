from .checkpoint_hook import AtomicCheckpointHook, use_atomic_checkpoint_hook
from .mmcv_ops_check_hook import MMCVOpsCheckHook, use_mmcv_ops_check_hook
from .sparsify_hook import SparsifyHook
from .progress_bar_hook import ProgressBarHook  # noqa: F401 (registers it)

__all__ = [
    'AtomicCheckpointHook', 'MMCVOpsCheckHook', 'SparsifyHook', 'use_atomic_checkpoint_hook',
    'use_mmcv_ops_check_hook'
]
