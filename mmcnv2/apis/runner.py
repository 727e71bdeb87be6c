"""Config preparation and entry points behind ``tools/train.py`` / ``tools/test.py``.

They work for mmpretrain and mmdet configs alike: the registries are chosen
by the config's ``default_scope``, and everything else is mmengine's Runner,
so the usual launchers (``torchrun``, slurm) scale it out.
"""
import os.path as osp
from typing import Optional

from mmengine.config import Config

from ..engine.hooks import use_atomic_checkpoint_hook, use_mmcv_ops_check_hook

SUPPORTED_SCOPES = ('mmpretrain', 'mmdet')


def load_config(config: str, cfg_options: Optional[dict] = None, work_dir: Optional[str] = None,
                launcher: str = 'none') -> Config:
    """Read ``config``, merge ``cfg_options`` and set ``work_dir`` / ``launcher``."""
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scope = cfg.get('default_scope')
    if scope not in SUPPORTED_SCOPES:
        raise ValueError(f"{config}: default_scope must be one of {SUPPORTED_SCOPES}, got {scope!r}")
    cfg.launcher = launcher
    if launcher != 'none':
        use_cpu_distributed(cfg)
    use_mmcv_ops_check_hook(cfg)  # a CPU-only mmcv on a GPU fails before the first iteration
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg


def use_cpu_distributed(cfg: Config):
    """Make a distributed run work without GPUs (gloo, DDP without device ids).

    Nothing changes on a machine with CUDA.
    """
    import torch

    if torch.cuda.is_available():
        return
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper


def init_cpu_process_group():
    """Join the torchrun process group with gloo when there is no GPU.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device`` first, which fails
    without a GPU; a group that already exists is used as it is.
    """
    import torch
    import torch.distributed as dist

    if torch.cuda.is_available() or dist.is_initialized():
        return
    dist.init_process_group(backend='gloo')


def _close_process_group():
    """Leave the process group cleanly: a gloo group still alive at interpreter
    exit can abort the process ('terminate called without an active exception')."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def enable_amp(cfg: Config):
    """Switch the optimizer wrapper to mixed precision, as mmdet/mmpretrain do."""
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper == 'AmpOptimWrapper':
        return
    if wrapper != 'OptimWrapper':
        raise ValueError(f'--amp needs optim_wrapper.type OptimWrapper, got {wrapper}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


def build_runner(cfg: Config):
    """Build mmengine's Runner (or the config's ``runner_type``)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    if cfg.get('launcher', 'none') == 'pytorch':
        init_cpu_process_group()

    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def train(config: str, work_dir=None, resume=None, amp=False, cfg_options=None, launcher='none'):
    """Train ``config``; ``resume`` is ``'auto'`` (latest checkpoint) or a path."""
    cfg = load_config(config, cfg_options, work_dir, launcher)
    use_atomic_checkpoint_hook(cfg)  # a kill at any moment leaves a checkpoint to resume from
    if amp:
        enable_amp(cfg)
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume is not None:
        cfg.resume, cfg.load_from = True, resume
    runner = build_runner(cfg)
    runner.train()
    _close_process_group()
    return runner


def test(config: str, checkpoint: str, work_dir=None, cfg_options=None, launcher='none'):
    """Evaluate ``checkpoint`` on the config's test set; return the metrics."""
    cfg = load_config(config, cfg_options, work_dir, launcher)
    cfg.load_from = checkpoint
    runner = build_runner(cfg)
    metrics = runner.test()
    _close_process_group()
    return metrics
