from .condensenet_v2_head import CondenseNetV2ClsHead

__all__ = ['CondenseNetV2ClsHead']
