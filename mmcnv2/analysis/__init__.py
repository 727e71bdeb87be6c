from .complexity import paper_complexity

__all__ = ['paper_complexity']
