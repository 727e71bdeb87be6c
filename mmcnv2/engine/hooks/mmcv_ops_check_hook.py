"""Check before the first iteration that mmcv's compiled ops run on the model's device."""
from mmengine.config import Config
from mmengine.hooks import Hook

from ...registry import register
from ...utils.mmcv_ops import check_mmcv_ops


@register('HOOKS')
class MMCVOpsCheckHook(Hook):
    """Fail at the start of a run when mmcv cannot run its compiled ops on the
    device of the runner's model (for example an mmcv built with CPU ops only,
    on a GPU), naming the command that rebuilds mmcv
    (:func:`mmcnv2.utils.check_mmcv_ops`). Runs in ``before_run``, which
    ``runner.train()``, ``runner.val()`` and ``runner.test()`` call before
    their first iteration; the detection configs list it in ``custom_hooks``,
    so mmdet's own ``tools/train.py`` and ``tools/test.py`` check too.

    Example:
        >>> custom_hooks = [dict(type='MMCVOpsCheckHook')]
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner):
        param = next(runner.model.parameters(), None)
        if param is not None:
            check_mmcv_ops(param.device)


def use_mmcv_ops_check_hook(cfg: Config):
    """Add :class:`MMCVOpsCheckHook` to a detection config's ``custom_hooks`` (once).

    Detectors are what call mmcv's compiled ops; other configs are left as they are.

    Example:
        >>> cfg = Config(dict(default_scope='mmdet', custom_hooks=[]))
        >>> use_mmcv_ops_check_hook(cfg)
        >>> use_mmcv_ops_check_hook(cfg)
        >>> [h['type'] for h in cfg.custom_hooks]
        ['MMCVOpsCheckHook']
    """
    if cfg.get('default_scope') != 'mmdet':
        return
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') in ('MMCVOpsCheckHook', MMCVOpsCheckHook) for h in hooks):
        hooks.append(dict(type='MMCVOpsCheckHook'))
    cfg.custom_hooks = hooks
