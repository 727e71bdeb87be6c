from .checkpoint_hook import AtomicCheckpointHook, use_atomic_checkpoint_hook
from .sparsify_hook import SparsifyHook

__all__ = ['AtomicCheckpointHook', 'SparsifyHook', 'use_atomic_checkpoint_hook']
