"""Training form -> deploy form: conversion of checkpoints and a side-by-side check."""
import os.path as osp
import tempfile
from typing import Optional

from ..analysis.complexity import paper_complexity
from ..checkpoint.files import (check_output_path, load_state_dict_strict, read_checkpoint,
                                save_deploy_checkpoint, state_dict_of)
from ..models.build import build_model
from ..models.deploy import switch_model_to_deploy, unfinished_sparsification
from ..models.forms import DEPLOY, CheckpointFormError, checkpoint_form
from ..models.layers import unwrap
from .inputs import check_inputs
from .runner import build_runner, load_config, match_checkpoint_form


def _read_training_checkpoint(checkpoint: str) -> dict:
    ckpt = read_checkpoint(checkpoint)
    if checkpoint_form(ckpt) == DEPLOY:
        raise CheckpointFormError(
            f'{checkpoint} is already in deploy form (condensed): there is nothing to convert. '
            'Evaluate or run it as it is (tools/test.py, tools/infer.py read the form off the '
            'checkpoint; elsewhere build the model with model.backbone.deploy=True)')
    return ckpt


def _check_fully_sparse(model, checkpoint: str):
    unfinished = unfinished_sparsification(model)
    if unfinished:
        raise ValueError(f'{checkpoint} has not finished sparsifying: {unfinished}; train '
                         'through the sparsification schedule first')


def compare_forms(config: str, checkpoint: str, out: Optional[str] = None,
                  cfg_options: Optional[dict] = None, force: bool = False) -> dict:
    """Evaluate a training-form checkpoint, convert it, evaluate the deploy form.

    Args:
        config (str): Config of the training-form model.
        checkpoint (str): Its checkpoint (masks fully sparsified); it must fit
            the config's model exactly.
        out (str, optional): Where to save the deploy-form checkpoint.
        cfg_options (dict, optional): Overrides for the config.
        force (bool): Overwrite an existing ``out``.

    Returns:
        dict: ``training`` and ``deploy`` entries with ``metrics``,
        ``paper_flops`` and ``paper_params``.

    Raises:
        CheckpointFormError: for a deploy-form checkpoint.
        CheckpointMismatchError: if the checkpoint does not fit the model.
        ValueError: if it has not finished sparsifying (before any evaluation).
        OutputExistsError: see
            :func:`~mmcnv2.checkpoint.files.save_deploy_checkpoint`.
    """
    if out is not None:
        check_output_path(out, [checkpoint], force)
    ckpt = _read_training_checkpoint(checkpoint)
    with tempfile.TemporaryDirectory() as work_dir:
        cfg = load_config(config, cfg_options, work_dir=work_dir)
        match_checkpoint_form(cfg, ckpt, cfg_options, checkpoint)
        check_inputs(cfg, ('test', ), pretrained=False)
        cfg.load_from = None
        cfg.pop('custom_hooks', None)  # evaluation only
        runner = build_runner(cfg)
        model = unwrap(runner.model)
        load_state_dict_strict(model, state_dict_of(ckpt), checkpoint)
        _check_fully_sparse(model, checkpoint)
        shape = tuple(runner.test_dataloader.dataset[0]['inputs'].shape)

        def report():
            metrics = runner.test()
            flops, params = paper_complexity(
                model, shape, forward=lambda m, x: m(x, mode='tensor'))
            return dict(metrics=dict(metrics), paper_flops=flops, paper_params=params)

        result = dict(training=report())
        switch_model_to_deploy(model)
        result['deploy'] = report()
        if out is not None:
            save_deploy_checkpoint(model, out, dict(source_checkpoint=osp.abspath(checkpoint)),
                                   source_meta=ckpt.get('meta', {}), inputs=[checkpoint],
                                   force=force)
    return result


def convert_checkpoint(config: str, checkpoint: str, out: str,
                       cfg_options: Optional[dict] = None, force: bool = False):
    """Turn a trained training-form checkpoint into a deploy-form checkpoint.

    The weights are the checkpoint's ``state_dict``; with mmengine's EMAHook
    that already holds the EMA weights (the hook swaps them in when saving),
    as the release's converter uses the EMA model. The result loads into the
    same config with ``model.backbone.deploy=True`` (mmcnv2's tools set it
    themselves from the checkpoint).

    Args:
        config (str): Config of the training-form model (mmpretrain or mmdet).
        checkpoint (str): The trained checkpoint (loaded with weights_only=True);
            it must fit the config's model exactly.
        out (str): Where to save the deploy-form checkpoint; never
            ``checkpoint`` itself. Written atomically, folders created.
        cfg_options (dict, optional): Overrides for the config.
        force (bool): Overwrite an existing ``out``.

    Returns:
        nn.Module: The converted model.

    Raises:
        OutputExistsError: ``out`` is the input, or exists without ``force``.
        CheckpointNotFoundError, CheckpointReadError: missing or unreadable
            checkpoint.
        CheckpointFormError: the checkpoint is already in deploy form.
        CheckpointMismatchError: it does not fit the config's model.
        ValueError: it has not finished sparsifying.
    """
    check_output_path(out, [checkpoint], force)
    ckpt = _read_training_checkpoint(checkpoint)
    cfg = load_config(config, cfg_options)
    match_checkpoint_form(cfg, ckpt, cfg_options, checkpoint)
    model = build_model(cfg.model, cfg.default_scope)
    load_state_dict_strict(model, state_dict_of(ckpt), checkpoint)
    switch_model_to_deploy(model)
    source_meta = ckpt.get('meta') or {}
    meta = dict(source_meta.get('mmcnv2', {}), source_checkpoint=osp.abspath(checkpoint),
                from_ema='ema_state_dict' in ckpt)
    save_deploy_checkpoint(model, out, dict(mmcnv2=meta), source_meta=source_meta,
                           inputs=[checkpoint], force=force)
    return model
