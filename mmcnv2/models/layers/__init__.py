from .dense_blocks import DenseStage, PreActConv
from .fused_dense_stage import FusedSFRDenseStage
from .inference_only import InferenceOnly, make_inference_only
from .learned_group_conv import LearnedGroupConv, channel_shuffle
from .sparse_conv import SparseConvBase, check_positive_ints, stage_at
from .sparse_feature_reactivation import SparseFeatureReactivation
from .shuffle_units import UNIT_KINDS, ShuffleSqueezeExcitation, ShuffleUnit
from .squeeze_excitation import SqueezeExcitation

__all__ = [
    'ShuffleUnit', 'ShuffleSqueezeExcitation', 'UNIT_KINDS', 'DenseStage', 'FusedSFRDenseStage',
    'InferenceOnly', 'PreActConv', 'LearnedGroupConv', 'SparseFeatureReactivation',
    'SparseConvBase', 'SqueezeExcitation', 'channel_shuffle', 'check_positive_ints',
    'make_inference_only', 'stage_at'
]
