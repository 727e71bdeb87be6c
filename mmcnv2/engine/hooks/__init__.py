from .sparsify_hook import SparsifyHook
from .progress_bar_hook import ProgressBarHook  # noqa: F401 (registers it)

__all__ = ['SparsifyHook']
