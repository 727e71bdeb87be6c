from .dense_blocks import DenseStage, PreActConv
from .learned_group_conv import LearnedGroupConv, channel_shuffle
from .sparse_conv import SparseConvBase, stage_at
from .sparse_feature_reactivation import SparseFeatureReactivation
from .squeeze_excitation import SqueezeExcitation

__all__ = [
    'DenseStage', 'PreActConv',     'LearnedGroupConv', 'SparseFeatureReactivation', 'SparseConvBase', 'SqueezeExcitation',
    'channel_shuffle', 'stage_at'
]
