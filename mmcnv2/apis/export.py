"""ONNX export of deploy-form classifiers and backbones (``tools/export_onnx.py``), checked
in ONNX Runtime or OpenVINO (:mod:`mmcnv2.apis.runtimes`)."""
import copy
import os
import os.path as osp
import warnings
from typing import Callable, List, Optional, Sequence

import torch
import torch.nn as nn

from ..checkpoint.files import load_state_dict_strict, read_checkpoint, state_dict_of
from ..models.build import build_model
from ..models.deploy import fuse_for_inference, sparse_layers, switch_model_to_deploy
from ..models.forms import DEPLOY, TRAINING, checkpoint_form
from .runner import load_config, set_model_form
from .runtimes import check_runtimes, onnxruntime_session, open_session  # noqa: F401


class TensorOutputs(nn.Module):
    """``classifier(x, mode='tensor')`` (logits), or ``backbone(x)`` (feature maps): the
    module that is exported to ONNX and that the exported graph is checked against."""

    def __init__(self, model: nn.Module, backbone_only: bool):
        super().__init__()
        self.model = model
        self.backbone_only = backbone_only

    def forward(self, inputs):
        if self.backbone_only:
            return tuple(self.model.backbone(inputs))
        return self.model(inputs, mode='tensor')


def load_deploy_model(config: str, checkpoint: str, cfg_options: Optional[dict] = None):
    """Build a config's model in the form ``checkpoint`` holds, load it strictly,
    and return it in deploy form, eval mode, with its config.

    A training-form checkpoint (fully sparsified) is condensed after loading;
    a deploy-form one is loaded as it is, and so is a model without LGC/SFR layers
    (a peer such as mmdet's RetinaNet with ShuffleNetV2, exported the same way to
    compare with).

    Raises:
        CheckpointNotFoundError, CheckpointReadError: missing or unreadable file.
        CheckpointMismatchError: if it does not fit the config's model.
        ValueError: if a training-form checkpoint has not finished sparsifying.
    """
    ckpt = read_checkpoint(checkpoint)
    form = checkpoint_form(ckpt) or TRAINING
    cfg = load_config(config, cfg_options)
    set_model_form(cfg, form)
    model = build_model(cfg.model, cfg.default_scope)
    load_state_dict_strict(model, state_dict_of(ckpt), checkpoint)
    if form != DEPLOY and sparse_layers(model):
        switch_model_to_deploy(model)
    return model.eval(), cfg


def export_form(model: nn.Module) -> nn.Module:
    """A copy of a deploy-form model in the form its ONNX file is exported from: every
    CondenseNetV2 dense stage fused with ``backend='onnx'`` (BN folded, no gathers or
    scatters for the reactivation, 3x3 group convolutions as depthwise ones; see
    :class:`~mmcnv2.models.layers.FusedSFRDenseStage`), inference-only. It computes
    the deploy form's outputs up to float rounding; ``model`` is left as it is.

    Example:
        >>> import torch
        >>> from mmcnv2.models import CondenseNetV2
        >>> net = CondenseNetV2('a', deploy=True).eval()
        >>> x = torch.randn(1, 3, 64, 64)
        >>> with torch.no_grad():
        ...     torch.allclose(export_form(net)(x)[-1], net(x)[-1], rtol=1e-4, atol=1e-5)
        True
    """
    return fuse_for_inference(copy.deepcopy(model), backend='onnx')


def export_onnx(config: str, checkpoint: str, out: str, shape: Optional[Sequence[int]] = None,
                backbone_only: Optional[bool] = None, verify: bool = True,
                cfg_options: Optional[dict] = None,
                verify_batch_sizes: Sequence[int] = (1, 4),
                runtimes: Sequence[str] = ('onnxruntime', )) -> dict:
    """Export the deploy form of a trained model to ONNX and check it in onnxruntime
    (and/or OpenVINO).

    An mmpretrain classifier exports its logits (``mode='tensor'``); an mmdet
    detector (or ``backbone_only=True``) exports its backbone's feature maps,
    outputs ``feat0``, ``feat1``, ... The input size is fixed, the batch axis
    dynamic. ``out`` is one self-contained file (weights inside) and its folder
    is created; a model over ONNX's 2 GB limit would get its weights in
    a ``.data`` file beside it (``files`` lists what was written). The
    exporter is torch's dynamo exporter; it traces :func:`export_form` (the dense
    stages as standard operators that ONNX Runtime runs fast), and the check
    compares the file with the deploy form. SFR-ShuffleNetV2's sum over
    repeated channel indices is exported as gathers (see
    :class:`~mmcnv2.models.layers.SparseFeatureReactivation`); a graph with a
    scatter that may repeat indices is refused (:func:`unsafe_scatter_nodes`).

    Args:
        config (str): The model's config (mmpretrain or mmdet).
        checkpoint (str): Training-form checkpoint whose sparse layers are fully
            sparsified, or a deploy-form checkpoint (``tools/convert.py``).
        out (str): The ``.onnx`` file to write.
        shape (Sequence[int], optional): Input ``(H, W)``; default 224 x 224
            for classifiers, 800 x 1333 for detectors.
        backbone_only (bool, optional): Export the backbone's feature maps;
            default: True for detectors, False for classifiers.
        verify (bool): Check the file with :func:`verify_onnx` at
            ``verify_batch_sizes``, the runtime's default threading and 1 thread.
        cfg_options (dict, optional): Overrides for the config.
        verify_batch_sizes (Sequence[int]): Batch sizes of the check.
        runtimes (Sequence[str]): Runtimes of the check, among
            :data:`~mmcnv2.apis.runtimes.RUNTIMES` (``'onnxruntime'``, ``'openvino'``).

    Returns:
        dict: ``out``, ``files``, ``input_shape``, ``output_names`` and, if
        verified, ``max_rel_diff`` (the worst of all runtimes) and
        ``rel_diff_by_runtime``.

    Raises:
        ValueError: on a bad ``shape`` or a checkpoint that has not finished
            sparsifying or an unknown runtime; RuntimeError when the graph holds an
            unsafe scatter or a runtime disagrees with PyTorch.

    Example:
        >>> export_onnx('configs/imagenet/cnv2_a.py', 'cnv2_a_deploy.pth',
        ...             'cnv2_a.onnx')  # doctest: +SKIP
        {'out': 'cnv2_a.onnx', 'files': ['cnv2_a.onnx'], 'input_shape': [1, 3, 224, 224], ...}
    """
    import onnx

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
    if not verify_batch_sizes or not all(isinstance(b, int) and b >= 1
                                         for b in verify_batch_sizes):
        raise ValueError('verify_batch_sizes must be a non-empty sequence of ints >= 1, got '
                         f'{verify_batch_sizes!r}')
    runtimes = check_runtimes(runtimes)
    model, _ = load_deploy_model(config, checkpoint, cfg_options)
    wrapper = TensorOutputs(model, backbone_only).eval()  # the reference of the check
    exported = TensorOutputs(export_form(model), backbone_only)
    x = torch.randn(1, 3, *shape)
    with torch.no_grad():
        ref = wrapper(x)
    num_outputs = len(ref) if isinstance(ref, (tuple, list)) else 1
    names = [f'feat{i}' for i in range(num_outputs)] if backbone_only else ['logits']
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        # external_data=False: one file, unless the model exceeds ONNX's 2 GB limit
        torch.onnx.export(exported, (x, ), out, input_names=['inputs'], output_names=names,
                          dynamic_shapes={'inputs': {0: torch.export.Dim('batch', max=1024)}},
                          dynamo=True, external_data=False)
    graph = onnx.load(out, load_external_data=False)
    external = {e.value for t in graph.graph.initializer
                if t.data_location == onnx.TensorProto.EXTERNAL
                for e in t.external_data if e.key == 'location'}
    files = [out] + sorted(osp.join(osp.dirname(out), f) for f in external)
    unsafe = unsafe_scatter_nodes(graph)
    if unsafe:
        raise RuntimeError(f'{out}: the exported graph holds scatters that may repeat indices '
                           f'(onnxruntime is not thread-safe for them): {unsafe}')
    result = dict(out=out, files=files, input_shape=list(x.shape), output_names=names)
    if verify:
        shapes = [(b, 3, *shape) for b in verify_batch_sizes]
        result['rel_diff_by_runtime'] = {r: verify_onnx(out, wrapper, shapes, runtime=r)
                                         for r in runtimes}
        result['max_rel_diff'] = max(result['rel_diff_by_runtime'].values())
    return result


def unsafe_scatter_nodes(model) -> List[str]:
    """Names of the scatter nodes of an ONNX graph that may repeat an index.

    ``ScatterND``, ``ScatterElements`` and ``Scatter`` leave repeated indices
    undefined without a reduction, and onnxruntime's CPU kernels for them
    split the updates over threads without synchronisation, so a repeated
    index loses updates at random. A scatter is safe only with constant
    indices (an initializer or ``Constant``) that repeat nothing.

    Args:
        model (onnx.ModelProto): The graph (subgraphs are searched too).

    Returns:
        list[str]: ``'name (op_type)'`` of every unsafe node; empty if none.

    Example:
        >>> import numpy as np
        >>> from onnx import helper, numpy_helper
        >>> def scatter(index):
        ...     init = numpy_helper.from_array(np.array(index, dtype=np.int64), 'idx')
        ...     node = helper.make_node('ScatterND', ['x', 'idx', 'u'], ['y'], 's',
        ...                             reduction='add')
        ...     return helper.make_model(helper.make_graph([node], 'g', [], [], [init]))
        >>> unsafe_scatter_nodes(scatter([[0], [2]])), unsafe_scatter_nodes(scatter([[0], [0]]))
        ([], ['s (ScatterND)'])
    """
    import numpy as np
    from onnx import numpy_helper

    def walk(graph, constants):
        constants = dict(constants)
        constants.update((t.name, numpy_helper.to_array(t)) for t in graph.initializer)
        unsafe = []
        for node in graph.node:
            if node.op_type == 'Constant' and node.attribute[0].name == 'value':
                constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
            if node.op_type in ('ScatterND', 'ScatterElements', 'Scatter'):
                index = constants.get(node.input[1])
                if index is None:
                    repeats = True
                elif node.op_type == 'ScatterND':
                    rows = index.reshape(-1, index.shape[-1])
                    repeats = len(np.unique(rows, axis=0)) < len(rows)
                else:
                    axis = next((a.i for a in node.attribute if a.name == 'axis'), 0)
                    repeats = bool((np.diff(np.sort(index, axis=axis), axis=axis) == 0).any())
                if repeats:
                    unsafe.append(f'{node.name} ({node.op_type})')
            for attr in node.attribute:  # If / Loop / Scan bodies
                for sub in ([attr.g] if attr.HasField('g') else []) + list(attr.graphs):
                    unsafe += walk(sub, constants)
        return unsafe

    return walk(model.graph, {})


def verify_onnx(path: str, reference: Callable, input_shapes: Sequence[Sequence[int]],
                rtol: float = 1e-4, intra_op_threads: Sequence[int] = (0, 1),
                runtime: str = 'onnxruntime') -> float:
    """Check an ONNX file against the PyTorch module it was exported from.

    Each of ``input_shapes`` gets a random normal input; every output of
    ``runtime`` (CPU, :func:`~mmcnv2.apis.runtimes.open_session`) must match
    ``reference``'s within ``rtol`` relative to that output's largest
    magnitude, ``max|runtime - torch| <= rtol * max|torch|``, in a session
    with each of ``intra_op_threads`` threads (0: the runtime's default, one
    per physical core). Several batch sizes and threads find
    kernels that are not thread-safe; the relative measure keeps rounding of
    large activations from failing a correct graph.

    Args:
        path (str): The ``.onnx`` file; its one input takes ``(N, 3, H, W)``.
        reference (Callable): The module, ``reference(x)`` giving a tensor or
            a tuple/list of tensors in the graph's output order.
        input_shapes (Sequence[Sequence[int]]): Input shapes to try.
        rtol (float): Largest relative difference allowed.
        intra_op_threads (Sequence[int]): Thread counts of one inference.
        runtime (str): ``'onnxruntime'`` or ``'openvino'`` (in float32).

    Returns:
        float: The largest relative difference seen.

    Raises:
        RuntimeError: naming the runtime, shape, threads and output that differ.
        ValueError: on an unknown runtime.
    """
    runtime, = check_runtimes([runtime])
    generator = torch.Generator().manual_seed(0)
    cases = []
    for shape in input_shapes:
        x = torch.randn(*shape, generator=generator)
        with torch.no_grad():
            ref = reference(x)
        cases.append((x.numpy(), [r.numpy() for r in (ref if isinstance(ref, (tuple, list))
                                                       else [ref])]))
    worst = 0.0
    for threads in intra_op_threads:
        session = open_session(path, runtime, threads)
        names = session.output_names
        for x, refs in cases:
            outs = session.run({session.input_names[0]: x})
            if len(outs) != len(refs):
                raise RuntimeError(f'{path}: {len(outs)} outputs, PyTorch gives {len(refs)}')
            for name, o, r in zip(names, outs, refs):
                if o.shape != r.shape:
                    raise RuntimeError(f'{path}: output {name} has shape {o.shape}, PyTorch '
                                       f'{r.shape} (input {list(x.shape)})')
                rel = float(abs(o - r).max() / max(float(abs(r).max()), 1e-12))
                worst = max(worst, rel)
                if not rel <= rtol:
                    raise RuntimeError(
                        f'{path}: {runtime} ({threads or "default"} intra-op threads) differs '
                        f'from PyTorch on input {list(x.shape)}, output {name}: max|diff| / '
                        f'max|PyTorch| = {rel:.3g} > rtol={rtol}')
    return worst
