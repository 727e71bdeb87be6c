from .condensenet_v2 import CondenseNetV2

__all__ = ['CondenseNetV2']
