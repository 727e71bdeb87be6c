"""Training form -> deploy form: conversion of checkpoints and a side-by-side check."""
import copy
import os.path as osp
import tempfile
from typing import Optional

import torch
from mmengine.model import is_model_wrapper

from .runner import build_runner, load_config


def _backbone(model):
    model = model.module if is_model_wrapper(model) else model
    backbone = getattr(model, 'backbone', None)
    if backbone is None or not hasattr(backbone, 'switch_to_deploy'):
        raise ValueError(f'{type(model).__name__} has no backbone with switch_to_deploy()')
    return backbone


def save_deploy_checkpoint(model, out: str, meta: Optional[dict] = None):
    """Save ``model`` (already in deploy form) as ``{'state_dict', 'meta'}``."""
    meta = dict(meta or {})
    meta.setdefault('mmcnv2', {})['form'] = 'deploy'
    torch.save(dict(state_dict=model.state_dict(), meta=meta), out)


def compare_forms(config: str, checkpoint: str, out: Optional[str] = None,
                  cfg_options: Optional[dict] = None) -> dict:
    """Evaluate a training-form checkpoint, convert it, evaluate the deploy form.

    Args:
        config (str): Config of the training-form model.
        checkpoint (str): Its checkpoint (masks fully sparsified).
        out (str, optional): Where to save the deploy-form checkpoint; it
            loads into the same config with ``model.backbone.deploy=True``.
        cfg_options (dict, optional): Overrides for the config.

    Returns:
        dict: ``training`` and ``deploy`` entries with ``metrics``,
        ``paper_flops`` and ``paper_params``.
    """
    from ..analysis import paper_complexity

    with tempfile.TemporaryDirectory() as work_dir:
        cfg = load_config(config, cfg_options, work_dir=work_dir)
        cfg.load_from = checkpoint
        cfg.pop('custom_hooks', None)  # evaluation only
        runner = build_runner(cfg)
        shape = tuple(runner.test_dataloader.dataset[0]['inputs'].shape)

        def report():
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            metrics = runner.test()
            flops, params = paper_complexity(
                model, shape, forward=lambda m, x: m(x, mode='tensor'))
            return dict(metrics=dict(metrics), paper_flops=flops, paper_params=params)

        result = dict(training=report())
        _backbone(runner.model).switch_to_deploy()
        result['deploy'] = report()
        if out is not None:
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            save_deploy_checkpoint(model, out, dict(source_checkpoint=osp.abspath(checkpoint)))
    return result
