from .complexity import paper_complexity
from .connections import connection_strength, plot_connections
from .curves import load_sparsification_curves, plot_sparsification_curves

__all__ = [
    'paper_complexity', 'connection_strength', 'plot_connections', 'load_sparsification_curves',
    'plot_sparsification_curves'
]
