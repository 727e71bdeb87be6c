"""Reading, strictly loading and safely writing checkpoints.

* :func:`read_checkpoint` loads a file with ``torch.load(weights_only=True)``
  and turns a missing, empty, truncated or foreign file into an error that
  names the file and says what is wrong, not a pickle or zip traceback.
* :func:`load_state_dict_strict` loads every key or none: the other form,
  missing, unexpected and mis-shaped keys are errors that name them.
* :func:`save_checkpoint_file` never overwrites an input, never overwrites an
  existing file unless asked, creates missing folders, and writes to a
  temporary file in the same folder that is renamed over the final name only
  when complete, so a crash never leaves a half-written checkpoint.
"""
import os.path as osp
from typing import Mapping, Optional, Sequence

import torch
import torch.nn as nn

from ..models.forms import (DEPLOY, CheckpointFormError, CheckpointMismatchError,
                            CheckpointNotFoundError, CheckpointReadError, compare_state_dicts,
                            describe_mismatch, form_mismatch_message, read_checkpoint,
                            state_dict_form, state_dict_of, strip_module_prefix)
from ..models.layers import unwrap
from .atomic import save_atomically


class OutputExistsError(FileExistsError):
    """An output file exists and overwriting it was not asked for, or it is an input."""


def check_state_dict_fits(model: nn.Module, state_dict: Mapping,
                          source: str = 'the checkpoint'):
    """Raise unless ``state_dict`` loads into ``model`` exactly (``module.``
    prefixes of the state dict and model wrappers are ignored).

    Raises:
        CheckpointFormError: if the sparse layers are in the other form; the
            message gives the flag that builds the model in the right one.
        CheckpointMismatchError: on missing, unexpected or mis-shaped keys,
            naming them.
    """
    model = unwrap(model)
    state_dict = strip_module_prefix(state_dict)
    own = model.state_dict()
    incoming_form, own_form = state_dict_form(state_dict), state_dict_form(own)
    if incoming_form and own_form and incoming_form != own_form:
        raise CheckpointFormError(f'{source}: ' + form_mismatch_message(
            type(model).__name__, 'backbone.' if hasattr(model, 'backbone') else '',
            incoming_form))
    problems = compare_state_dicts(own, state_dict)
    if any(problems.values()):
        raise CheckpointMismatchError(f'{source} does not match the model '
                                      f'({type(model).__name__}): {describe_mismatch(problems)}')


def load_state_dict_strict(model: nn.Module, state_dict: Mapping, source: str = 'the checkpoint'):
    """Load ``state_dict`` into ``model``, all or nothing (see :func:`check_state_dict_fits`)."""
    check_state_dict_fits(model, state_dict, source)
    unwrap(model).load_state_dict(strip_module_prefix(state_dict), strict=True)


def check_output_path(out: str, inputs: Sequence[str] = (), force: bool = False):
    """Refuse an output that is one of ``inputs`` (also through other paths or
    links), or that exists when ``force`` is False.

    Raises:
        OutputExistsError: in those cases.
    """
    if not osp.exists(out):
        return
    for path in inputs:
        if osp.exists(path) and osp.samefile(out, path):
            raise OutputExistsError(f'the output {out} is the input {path}: write the result '
                                    'to another file (the input would be lost)')
    if osp.isdir(out):
        raise OutputExistsError(f'the output {out} is a folder; give a file name')
    if not force:
        raise OutputExistsError(f'{out} exists; pass --force (force=True) to overwrite it')


def save_checkpoint_file(checkpoint: dict, out: str, inputs: Sequence[str] = (),
                         force: bool = False):
    """``torch.save`` ``checkpoint`` to ``out`` atomically.

    The output folder is created if missing; the file is written by
    :func:`mmcnv2.checkpoint.atomic.atomic_output` (a temporary name in the
    same folder, renamed over ``out`` only when complete), so ``out`` is
    either its old self or complete.

    Args:
        checkpoint (dict): What to save.
        out (str): The file to write.
        inputs (Sequence[str]): Files ``out`` must not be.
        force (bool): Overwrite an existing ``out``.

    Raises:
        OutputExistsError: see :func:`check_output_path`.
    """
    check_output_path(out, inputs, force)
    save_atomically(checkpoint, out)


def save_deploy_checkpoint(model, out: str, meta: Optional[dict] = None,
                           source_meta: Optional[dict] = None, inputs: Sequence[str] = (),
                           force: bool = False):
    """Save ``model`` (already in deploy form) as ``{'state_dict', 'meta'}``.

    The one writer of deploy-form checkpoints (``tools/convert.py``,
    ``tools/deploy_check.py``, ``SparsifyHook(convert_at_end=True)``), so that
    every one says its form in ``meta['mmcnv2']['form']``. The file is written
    atomically (a temporary file renamed over ``out``), its folder created if
    missing; see :func:`save_checkpoint_file`.

    Args:
        model (nn.Module): The model in deploy form.
        out (str): Where to save.
        meta (dict, optional): Extra meta; ``meta['mmcnv2']['form']`` is set
            to ``'deploy'``.
        source_meta (dict, optional): The training checkpoint's meta. Its
            ``dataset_meta`` (class names, palette) is kept so that
            ``init_detector``/``DetInferencer`` label boxes with the
            dataset's classes instead of falling back to COCO's.
        inputs (Sequence[str]): Files ``out`` must not be (the source).
        force (bool): Overwrite an existing ``out``.

    Raises:
        OutputExistsError: if ``out`` is one of ``inputs``, or exists and
            ``force`` is False.
    """
    meta = dict(meta or {})
    if source_meta and 'dataset_meta' in source_meta:
        meta.setdefault('dataset_meta', source_meta['dataset_meta'])
    meta.setdefault('mmcnv2', {})['form'] = DEPLOY
    save_checkpoint_file(dict(state_dict=model.state_dict(), meta=meta), out, inputs, force)


__all__ = [
    'CheckpointNotFoundError', 'CheckpointReadError', 'OutputExistsError', 'check_output_path',
    'check_state_dict_fits', 'load_state_dict_strict', 'read_checkpoint', 'save_checkpoint_file',
    'save_deploy_checkpoint', 'state_dict_of'
]
