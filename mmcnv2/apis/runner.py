"""Config preparation and entry points behind ``tools/train.py`` / ``tools/test.py``.

They work for mmpretrain and mmdet configs alike: the registries are chosen
by the config's ``default_scope``, and everything else is mmengine's Runner,
so the usual launchers (``torchrun``, slurm) scale it out.
"""
import os.path as osp
from typing import Optional

from mmengine.config import Config

from ..checkpoint.files import (CheckpointNotFoundError, CheckpointReadError, OutputExistsError,
                                check_state_dict_fits, read_checkpoint, state_dict_of)
from ..models.pretrained import PretrainedNotFoundError
from ..models.build import set_model_cfg_form
from ..models.forms import DEPLOY, CheckpointFormError, CheckpointMismatchError, checkpoint_form
from ..engine.hooks import use_atomic_checkpoint_hook, use_mmcv_ops_check_hook
from .inputs import MissingInputsError, check_inputs

SUPPORTED_SCOPES = ('mmpretrain', 'mmdet')


class ConfigNotFoundError(FileNotFoundError):
    """A config file does not exist."""


#: The errors of bad input (files, checkpoints, configs) that the tools print
#: as ``error: ...`` instead of a traceback.
INPUT_ERRORS = (CheckpointMismatchError, CheckpointReadError, CheckpointNotFoundError,
                PretrainedNotFoundError, MissingInputsError, OutputExistsError,
                ConfigNotFoundError)


def load_config(config: str, cfg_options: Optional[dict] = None, work_dir: Optional[str] = None,
                launcher: str = 'none') -> Config:
    """Read ``config``, merge ``cfg_options`` and set ``work_dir`` / ``launcher``."""
    if not osp.isfile(config):
        raise ConfigNotFoundError(f'config file not found: {config}')
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


def set_model_form(cfg: Config, form: str):
    """Build ``cfg.model`` in ``form``: set ``deploy`` of its mmcnv2 backbone and head
    (:func:`~mmcnv2.models.build.set_model_cfg_form`).

    Example:
        >>> cfg = Config(dict(default_scope='mmpretrain', model=dict(
        ...     type='ImageClassifier', backbone=dict(type='CondenseNet', arch='c'),
        ...     head=dict(type='CondenseNetClsHead', num_classes=10, in_channels=2064))))
        >>> set_model_form(cfg, 'deploy')
        >>> cfg.model.backbone.deploy, cfg.model.head.deploy
        (True, True)
    """
    set_model_cfg_form(cfg.model, cfg.default_scope, form)


def _requested_deploy(cfg_options: Optional[dict]) -> Optional[bool]:
    """``model.backbone.deploy`` as given in ``cfg_options`` (flat or nested), or None."""
    if not cfg_options:
        return None
    if 'model.backbone.deploy' in cfg_options:
        return bool(cfg_options['model.backbone.deploy'])
    model = cfg_options.get('model')
    backbone = model.get('backbone') if isinstance(model, dict) else None
    if isinstance(backbone, dict) and 'deploy' in backbone:
        return bool(backbone['deploy'])
    return None


def match_checkpoint_form(cfg: Config, checkpoint: dict, cfg_options: Optional[dict] = None,
                          source: str = 'the checkpoint') -> Optional[str]:
    """Build the model of ``cfg`` in the form ``checkpoint`` holds (see :func:`set_model_form`).

    Returns:
        str | None: The form (``'training'``, ``'deploy'``, or None for a
        model without sparse layers).

    Raises:
        CheckpointFormError: if ``cfg_options`` asks for the other form
            (``model.backbone.deploy``): nothing is changed silently.
    """
    form = checkpoint_form(checkpoint)
    requested = _requested_deploy(cfg_options)
    if form is not None and requested is not None and requested != (form == DEPLOY):
        raise CheckpointFormError(
            f'{source} is in {form} form but model.backbone.deploy={requested} was given. Drop '
            "the option: mmcnv2's tools build the model in the checkpoint's form. To get the "
            'deploy form of a training checkpoint, convert it (tools/convert.py) or compare both '
            '(tools/deploy_check.py); a deploy checkpoint has no training form')
    if form is not None:
        set_model_form(cfg, form)
    return form


def train(config: str, work_dir=None, resume=None, amp=False, cfg_options=None, launcher='none'):
    """Train ``config``; ``resume`` is ``'auto'`` (latest checkpoint) or a path.

    Before anything is built, the datasets and pretrained weights the config
    names must exist and a checkpoint to resume from must be readable and fit
    the model exactly; otherwise an error says what is missing and what to do.

    Raises:
        MissingInputsError: a dataset or the pretrained weights are missing.
        CheckpointNotFoundError, CheckpointReadError, CheckpointMismatchError:
            the checkpoint to resume from is missing, unreadable or another
            model's.
    """
    from mmengine.runner import find_latest_checkpoint

    cfg = load_config(config, cfg_options, work_dir, launcher)
    use_atomic_checkpoint_hook(cfg)  # a kill at any moment leaves a checkpoint to resume from
    if amp:
        enable_amp(cfg)
    splits = ['train'] + (['val'] if cfg.get('val_cfg') is not None else [])
    check_inputs(cfg, splits)
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
        resume_from = find_latest_checkpoint(cfg.work_dir) if osp.isdir(cfg.work_dir) else None
    elif resume is not None:
        cfg.resume, cfg.load_from = True, resume
        resume_from = resume
    else:
        resume_from = None
    state_dict = None
    if resume_from:
        state_dict = state_dict_of(read_checkpoint(resume_from))
    elif cfg.get('load_from'):
        read_checkpoint(cfg.load_from)  # readable; the backbones check what loads into them
    runner = build_runner(cfg)
    if state_dict is not None:
        check_state_dict_fits(runner.model, state_dict, f'{resume_from} (to resume from)')
        del state_dict
    runner.train()
    _close_process_group()
    return runner


def test(config: str, checkpoint: str, work_dir=None, cfg_options=None, launcher='none'):
    """Evaluate ``checkpoint`` on the config's test set; return the metrics.

    The model is built in the form the checkpoint holds (training or deploy;
    ``deploy`` of the mmcnv2 backbone and head is set accordingly), and the
    checkpoint must fit it exactly.

    Raises:
        CheckpointNotFoundError, CheckpointReadError: missing or unreadable file.
        CheckpointFormError: ``cfg_options`` asks for the other form.
        CheckpointMismatchError: missing, unexpected or mis-shaped keys.
        MissingInputsError: the test data is missing.
    """
    cfg = load_config(config, cfg_options, work_dir, launcher)
    ckpt = read_checkpoint(checkpoint)
    match_checkpoint_form(cfg, ckpt, cfg_options, checkpoint)
    check_inputs(cfg, ('test', ), pretrained=False)
    cfg.load_from = checkpoint
    runner = build_runner(cfg)
    check_state_dict_fits(runner.model, state_dict_of(ckpt), checkpoint)
    del ckpt
    metrics = runner.test()
    _close_process_group()
    return metrics
