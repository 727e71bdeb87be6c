from .sparsify_hook import SparsifyHook, find_sparse_layers

__all__ = ['SparsifyHook', 'find_sparse_layers']
