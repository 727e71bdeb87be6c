from .condensenet_head import CondenseNetClsHead
from .condensenet_v2_head import CondenseNetV2ClsHead
from .shufflenet_v2_plus_head import ShuffleNetV2PlusClsHead

__all__ = ['CondenseNetClsHead', 'CondenseNetV2ClsHead', 'ShuffleNetV2PlusClsHead']
