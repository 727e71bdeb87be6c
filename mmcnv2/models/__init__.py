from .backbones import (CondenseNet, CondenseNetV2, SFRShuffleNetV2, SFRShuffleNetV2Plus,
                        ShuffleNetV2Plus)
from .heads import CondenseNetClsHead, CondenseNetV2ClsHead, ShuffleNetV2PlusClsHead
from .deploy import fuse_for_inference, switch_model_to_deploy
from .layers import LearnedGroupConv, SparseFeatureReactivation

__all__ = [
    'CondenseNet', 'CondenseNetV2', 'SFRShuffleNetV2', 'SFRShuffleNetV2Plus', 'ShuffleNetV2Plus',
    'CondenseNetClsHead', 'CondenseNetV2ClsHead', 'ShuffleNetV2PlusClsHead', 'LearnedGroupConv',
    'SparseFeatureReactivation', 'fuse_for_inference', 'switch_model_to_deploy'
]
