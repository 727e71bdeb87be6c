from ..registry import register
from .hooks import AtomicCheckpointHook, SparsifyHook, use_atomic_checkpoint_hook

register('HOOKS')(AtomicCheckpointHook)
register('HOOKS')(SparsifyHook)

__all__ = ['AtomicCheckpointHook', 'SparsifyHook', 'use_atomic_checkpoint_hook']
