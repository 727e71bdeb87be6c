from .mmcv_ops import MMCVOpsError, check_mmcv_ops, mmcv_ops_problem

__all__ = ['MMCVOpsError', 'check_mmcv_ops', 'mmcv_ops_problem']
