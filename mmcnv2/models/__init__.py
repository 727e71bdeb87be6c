from ..registry import register
from .backbones import CondenseNetV2
from .heads import CondenseNetV2ClsHead
from .layers import LearnedGroupConv, SparseFeatureReactivation

register('MODELS')(CondenseNetV2)
register('MODELS', codebases=('mmpretrain', ))(CondenseNetV2ClsHead)

__all__ = ['CondenseNetV2', 'CondenseNetV2ClsHead', 'LearnedGroupConv',
           'SparseFeatureReactivation']
