from .complexity import paper_complexity
from .connections import connection_strength, plot_connections

__all__ = ['paper_complexity', 'connection_strength', 'plot_connections']
