from ..registry import register
from .digits import SklearnDigits

register('DATASETS', codebases=('mmpretrain', ))(SklearnDigits)

__all__ = ['SklearnDigits']
