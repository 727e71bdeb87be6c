"""ONNX export of deploy-form classifiers and backbones (``tools/export_onnx.py``)."""
import copy
import warnings
from typing import Optional, Sequence

import torch
import torch.nn as nn

from ..checkpoint.files import load_state_dict_strict, read_checkpoint, state_dict_of
from ..models.deploy import switch_model_to_deploy
from ..models.forms import DEPLOY, TRAINING, checkpoint_form
from .runner import load_config, set_model_form


class _TensorOutputs(nn.Module):
    """``classifier(x, mode='tensor')`` (logits), or ``backbone(x)`` (feature maps)."""

    def __init__(self, model: nn.Module, backbone_only: bool):
        super().__init__()
        self.model = model
        self.backbone_only = backbone_only

    def forward(self, inputs):
        if self.backbone_only:
            return tuple(self.model.backbone(inputs))
        return self.model(inputs, mode='tensor')


def build_deploy_model(config: str, checkpoint: str, cfg_options: Optional[dict] = None):
    """Build a config's model in the form ``checkpoint`` holds, load it strictly,
    and return it in deploy form, eval mode, with its config.

    A training-form checkpoint (fully sparsified) is condensed after loading;
    a deploy-form one is loaded as it is.

    Raises:
        CheckpointNotFoundError, CheckpointReadError: missing or unreadable file.
        CheckpointMismatchError: if it does not fit the config's model.
        ValueError: if a training-form checkpoint has not finished sparsifying.
    """
    from mmengine.registry import DefaultScope, MODELS

    ckpt = read_checkpoint(checkpoint)
    form = checkpoint_form(ckpt) or TRAINING
    cfg = load_config(config, cfg_options)
    set_model_form(cfg, form)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.get('backbone', {}).pop('init_cfg', None)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(model_cfg)
    load_state_dict_strict(model, state_dict_of(ckpt), checkpoint)
    if form != DEPLOY:
        switch_model_to_deploy(model)
    return model.eval(), cfg


def export_onnx(config: str, checkpoint: str, out: str, shape: Optional[Sequence[int]] = None,
                backbone_only: Optional[bool] = None, verify: bool = True,
                cfg_options: Optional[dict] = None) -> dict:
    """Export the deploy form of a trained model to ONNX and check it in onnxruntime.

    An mmpretrain classifier exports its logits (``mode='tensor'``); an mmdet
    detector (or ``backbone_only=True``) exports its backbone's feature maps,
    outputs ``feat0``, ``feat1``, ... The batch axis is dynamic. The
    exporter is torch's dynamo exporter: the TorchScript one turns the SFR's
    ``index_add`` with repeated indices into a scatter that keeps only one of
    them (wrong outputs).

    Args:
        config (str): The model's config (mmpretrain or mmdet).
        checkpoint (str): Training-form checkpoint whose sparse layers are fully
            sparsified, or a deploy-form checkpoint (``tools/convert.py``).
        out (str): The ``.onnx`` file to write.
        shape (Sequence[int], optional): Input ``(H, W)``; default 224 x 224
            for classifiers, 800 x 1333 for detectors.
        backbone_only (bool, optional): Export the backbone's feature maps;
            default: True for detectors, False for classifiers.
        verify (bool): Run the file in onnxruntime on a random input and
            require a max abs difference to PyTorch of at most 1e-4.
        cfg_options (dict, optional): Overrides for the config.

    Returns:
        dict: ``out``, ``input_shape``, ``output_names`` and, if verified,
        ``max_abs_diff``.

    Raises:
        ValueError: on a bad ``shape`` or a checkpoint that has not finished
            sparsifying; RuntimeError when onnxruntime disagrees with PyTorch.

    Example:
        >>> export_onnx('configs/imagenet/cnv2_a.py', 'cnv2_a_deploy.pth',
        ...             'cnv2_a.onnx')  # doctest: +SKIP
        {'out': 'cnv2_a.onnx', 'input_shape': [1, 3, 224, 224], ...}
    """
    is_detector = load_config(config, cfg_options).default_scope == 'mmdet'
    if backbone_only is None:
        backbone_only = is_detector
    elif is_detector and not backbone_only:
        raise ValueError('backbone_only must be True for a detector (mmdet config): whole '
                         'detectors with their post-processing are not exported')
    if shape is None:
        shape = (800, 1333) if is_detector else (224, 224)
    if len(shape) != 2 or not all(isinstance(s, int) and s >= 32 for s in shape):
        raise ValueError(f'shape must be two ints (H, W), each >= 32, got {tuple(shape)!r}')
    model, _ = build_deploy_model(config, checkpoint, cfg_options)
    wrapper = _TensorOutputs(model, backbone_only).eval()
    x = torch.randn(1, 3, *shape)
    with torch.no_grad():
        ref = wrapper(x)
    refs = list(ref) if isinstance(ref, (tuple, list)) else [ref]
    names = [f'feat{i}' for i in range(len(refs))] if backbone_only else ['logits']
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(wrapper, (x, ), out, input_names=['inputs'], output_names=names,
                          dynamic_shapes={'inputs': {0: torch.export.Dim('batch', max=1024)}},
                          dynamo=True)
    result = dict(out=out, input_shape=list(x.shape), output_names=names)
    if verify:
        result['max_abs_diff'] = verify_onnx(out, x, refs)
    return result


def verify_onnx(path: str, x: torch.Tensor, refs: Sequence[torch.Tensor],
                atol: float = 1e-4) -> float:
    """Run ``path`` in onnxruntime on ``x``; return the max abs difference to ``refs``.

    Raises:
        RuntimeError: if it exceeds ``atol``.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    outs = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    if len(outs) != len(refs):
        raise RuntimeError(f'{path}: {len(outs)} outputs, PyTorch gives {len(refs)}')
    diff = max(float(abs(o - r.numpy()).max()) for o, r in zip(outs, refs))
    if diff > atol:
        raise RuntimeError(f'{path}: onnxruntime differs from PyTorch by {diff:.3g} > {atol}')
    return diff
