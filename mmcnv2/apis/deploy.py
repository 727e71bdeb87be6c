"""Training form -> deploy form: conversion of checkpoints and a side-by-side check."""
import copy
import os.path as osp
import tempfile
from typing import Optional

import torch
from mmengine.model import is_model_wrapper

from ..models.deploy import switch_model_to_deploy
from .runner import build_runner, load_config


def save_deploy_checkpoint(model, out: str, meta: Optional[dict] = None,
                           source_meta: Optional[dict] = None):
    """Save ``model`` (already in deploy form) as ``{'state_dict', 'meta'}``.

    Args:
        model (nn.Module): The model in deploy form.
        out (str): Where to save.
        meta (dict, optional): Extra meta; ``meta['mmcnv2']['form']`` is set
            to ``'deploy'``.
        source_meta (dict, optional): The training checkpoint's meta. Its
            ``dataset_meta`` (class names, palette) is kept so that
            ``init_detector``/``DetInferencer`` label boxes with the
            dataset's classes instead of falling back to COCO's.
    """
    meta = dict(meta or {})
    if source_meta and 'dataset_meta' in source_meta:
        meta.setdefault('dataset_meta', source_meta['dataset_meta'])
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
        switch_model_to_deploy(runner.model)
        result['deploy'] = report()
        if out is not None:
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            source = torch.load(checkpoint, map_location='cpu', weights_only=True)
            source_meta = source.get('meta', {})
            save_deploy_checkpoint(model, out, dict(source_checkpoint=osp.abspath(checkpoint)),
                                   source_meta=source_meta)
    return result


def convert_checkpoint(config: str, checkpoint: str, out: str,
                       cfg_options: Optional[dict] = None):
    """Turn a trained training-form checkpoint into a deploy-form checkpoint.

    The weights are the checkpoint's ``state_dict``; with mmengine's EMAHook
    that already holds the EMA weights (the hook swaps them in when saving),
    as the release's converter uses the EMA model. The result loads into the
    same config with ``model.backbone.deploy=True``.

    Args:
        config (str): Config of the training-form model (mmpretrain or mmdet).
        checkpoint (str): The trained checkpoint (loaded with weights_only=True).
        out (str): Where to save the deploy-form checkpoint.
        cfg_options (dict, optional): Overrides for the config.

    Returns:
        nn.Module: The converted model.
    """
    from mmengine.registry import DefaultScope, MODELS
    from mmengine.runner import load_checkpoint

    cfg = load_config(config, cfg_options)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.get('backbone', {}).pop('init_cfg', None)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(model_cfg)
    ckpt = load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    switch_model_to_deploy(model)
    meta = dict(ckpt.get('meta', {}).get('mmcnv2', {}), source_checkpoint=osp.abspath(checkpoint),
                from_ema='ema_state_dict' in ckpt)
    save_deploy_checkpoint(model, out, dict(mmcnv2=meta), source_meta=ckpt.get('meta', {}))
    return model
