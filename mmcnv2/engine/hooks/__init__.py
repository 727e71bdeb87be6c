from .sparsify_hook import SparsifyHook

__all__ = ['SparsifyHook']
