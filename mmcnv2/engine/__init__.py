from ..registry import register
from .hooks import SparsifyHook

register('HOOKS')(SparsifyHook)

__all__ = ['SparsifyHook']
