from .channel_shuffle import channel_shuffle
from .conversion import (check_deployable, fuse_children, fuse_module, sparse_layers,
                         switch_children_to_deploy, switch_module_to_deploy,
                         unfinished_sparsification, unwrap)
from .dense_blocks import CondenseDenseLayer, DenseStage, PreActConv, SFRDenseLayer
from .fused_dense_stage import FusedSFRDenseStage
from .inference_only import InferenceOnly, make_inference_only
from .learned_group_conv import LearnedGroupConv
from .sparse_conv import SparseConvBase, check_positive_ints, stage_at
from .sparse_feature_reactivation import SparseFeatureReactivation
from .shuffle_units import UNIT_KINDS, ShuffleSqueezeExcitation, ShuffleUnit
from .squeeze_excitation import SqueezeExcitation

__all__ = [
    'ShuffleUnit', 'ShuffleSqueezeExcitation', 'UNIT_KINDS', 'CondenseDenseLayer', 'DenseStage',
    'FusedSFRDenseStage', 'InferenceOnly', 'PreActConv', 'LearnedGroupConv', 'SFRDenseLayer',
    'SparseFeatureReactivation', 'SparseConvBase', 'SqueezeExcitation', 'channel_shuffle',
    'check_deployable', 'check_positive_ints', 'fuse_children', 'fuse_module',
    'make_inference_only', 'sparse_layers', 'stage_at', 'switch_children_to_deploy',
    'switch_module_to_deploy', 'unfinished_sparsification', 'unwrap'
]
