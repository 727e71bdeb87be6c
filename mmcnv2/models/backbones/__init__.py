from .condensenet import CondenseNet
from .condensenet_v2 import CondenseNetV2
from .sfr_shufflenet_v2 import SFRShuffleNetV2
from .shufflenet_v2_plus import SFRShuffleNetV2Plus, ShuffleNetV2Plus

__all__ = [
    'CondenseNet', 'CondenseNetV2', 'SFRShuffleNetV2', 'SFRShuffleNetV2Plus', 'ShuffleNetV2Plus'
]
