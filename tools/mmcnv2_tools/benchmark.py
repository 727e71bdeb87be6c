"""Latency benchmark of the deploy forms against same-FLOPs peers (``tools/benchmark.py``).

Every model is timed in eval mode under ``torch.inference_mode`` on the CPU,
for each thread count and batch size, as the median of repeated single
forward passes after a warm-up (with the 25th/75th percentiles as spread).
All models of one setting are timed in rounds, one pass of each per round, so
that a drift of the machine's speed hits ours and the peers alike and the
ratio of a model to its peer compares numbers taken under the same conditions.

Before anything is built the process's malloc policy is fixed
(:func:`mmcnv2.analysis.timing.set_malloc_policy`: ``'retain'`` by default), so
that no pass page-faults and no timing depends on what ran before it.

The peers are mmpretrain's ShuffleNetV2 0.5x/1.0x/1.5x, MobileNetV2 1.0x and
MobileNetV3 small/large, as classifiers with their usual heads, as mmpretrain
builds them (the ShuffleNetV2 also in channels-last layout, which our fused
SFR-ShuffleNetV2 uses, so that its ratio can be read both ways). Each of our
models is paired with the ShuffleNetV2 of (nearly) the same FLOPs: CondenseNetV2
A/B/C with 0.5x/1.0x/1.5x (46/146/309M against 41/146/299M), SFR-ShuffleNetV2
with the plain ShuffleNetV2 of its width.
"""
import copy
import json
import os
import os.path as osp
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config

from mmcnv2.analysis.timing import (MALLOC_POLICIES, Timing, machine_info,  # noqa: F401
                                    set_malloc_policy, time_forward, time_round_robin)
from mmcnv2.apis.detector_onnx import export_detector_onnx
from mmcnv2.apis.export import TensorOutputs, export_form, onnxruntime_session
from mmcnv2.apis.quantize import input_layout, quantize_onnx
from mmcnv2.apis.runtimes import check_runtimes, open_session
from mmcnv2.models.build import build_model
from mmcnv2.models.deploy import fuse_for_inference, sparse_layers, switch_model_to_deploy
from mmcnv2.models.layers import FusedSFRDenseStage

#: Our classifiers: name -> (config, same-FLOPs peer).
#: Forms of ours that can be timed (see :func:`run_benchmark`).
FORMS = ('training', 'deploy', 'fused', 'fused-python')

OURS = {
    'CondenseNetV2-A': ('configs/imagenet/cnv2_a.py', 'ShuffleNetV2-0.5x'),
    'CondenseNetV2-B': ('configs/imagenet/cnv2_b.py', 'ShuffleNetV2-1.0x'),
    'CondenseNetV2-C': ('configs/imagenet/cnv2_c.py', 'ShuffleNetV2-1.5x'),
    'SFR-ShuffleNetV2-0.5x': ('configs/imagenet/sfr_shufflenetv2_0.5x.py', 'ShuffleNetV2-0.5x'),
    'SFR-ShuffleNetV2-1.0x': ('configs/imagenet/sfr_shufflenetv2_1.0x.py', 'ShuffleNetV2-1.0x'),
    'SFR-ShuffleNetV2-1.5x': ('configs/imagenet/sfr_shufflenetv2_1.5x.py', 'ShuffleNetV2-1.5x'),
}

#: Our detectors timed at 800 x 1333: name -> (config, peer).
DETECTORS = {
    'RetinaNet-CondenseNetV2-C': ('configs/retinanet_cnv2_c.py', 'RetinaNet-ShuffleNetV2-1.5x'),
}
DETECTOR_PEERS = {'RetinaNet-ShuffleNetV2-1.5x': 'configs/retinanet_shufflenetv2_1.5x.py'}

#: Input sizes of the whole detectors in ONNX: 800 x 1333 and the NEON demo's 400 x 400,
#: each padded to the detectors' ``pad_size_divisor`` 32 (what mmdet's test feeds them).
WHOLE_DETECTOR_SIZES = ((800, 1344), (416, 416))

#: The suffix of the form of an int8 (statically quantized) ONNX file.
INT8 = '-int8'


def _peer_classifier(backbone: dict, in_channels: int, head: Optional[dict] = None) -> dict:
    return dict(
        type='ImageClassifier', backbone=backbone, neck=dict(type='GlobalAveragePooling'),
        head=head or dict(type='LinearClsHead', num_classes=1000, in_channels=in_channels))


#: mmpretrain peers: name -> model config (mmpretrain scope).
PEERS = {
    'ShuffleNetV2-0.5x': _peer_classifier(dict(type='ShuffleNetV2', widen_factor=0.5), 1024),
    'ShuffleNetV2-1.0x': _peer_classifier(dict(type='ShuffleNetV2', widen_factor=1.0), 1024),
    'ShuffleNetV2-1.5x': _peer_classifier(dict(type='ShuffleNetV2', widen_factor=1.5), 1024),
    'MobileNetV2-1.0x': _peer_classifier(dict(type='MobileNetV2', widen_factor=1.0), 1280),
    'MobileNetV3-small': _peer_classifier(
        dict(type='MobileNetV3', arch='small'), 576,
        dict(type='StackedLinearClsHead', num_classes=1000, in_channels=576, mid_channels=[1024],
             act_cfg=dict(type='HSwish'))),
    'MobileNetV3-large': _peer_classifier(
        dict(type='MobileNetV3', arch='large'), 960,
        dict(type='StackedLinearClsHead', num_classes=1000, in_channels=960, mid_channels=[1280],
             act_cfg=dict(type='HSwish'))),
}


def check_choices(arg: str, values: Sequence[str], allowed: Sequence[str]):
    """Raise ``ValueError`` naming ``arg`` and the allowed values unless every one of
    ``values`` is among ``allowed``.

    Example:
        >>> check_choices('forms', ['fused'], FORMS)
        >>> check_choices('forms', ['compiled'], ['deploy', 'fused'])
        Traceback (most recent call last):
        ...
        ValueError: forms must be among ['deploy', 'fused'], got ['compiled']
    """
    bad = sorted(set(values) - set(allowed))
    if bad:
        raise ValueError(f'{arg} must be among {sorted(allowed)}, got {bad}')


def build_config_model(config: str, root: str = '.') -> nn.Module:
    """The model of the config file ``root/config``, with random weights, in eval mode."""
    cfg = Config.fromfile(osp.join(root, config))
    return build_model(cfg.model, cfg.default_scope).eval()


def build_ours(config: str, root: str = '.') -> Dict[str, nn.Module]:
    """Training form (fully sparsified masks) and deploy form of a config's model.

    Random weights: latency does not depend on their values. Every LGC/SFR is
    pruned to its final density with ``sparsify(1.0)``, as after training.
    """
    training = build_config_model(config, root)
    for _, layer in sparse_layers(training):
        layer.sparsify(1.0)
    deploy = copy.deepcopy(training)
    switch_model_to_deploy(deploy)
    return dict(training=training.eval(), deploy=deploy.eval())


def build_peer(name: str) -> nn.Module:
    """An mmpretrain peer classifier of :data:`PEERS` with random weights, in eval mode."""
    import mmpretrain.models  # noqa: F401  (registers the mmpretrain models)
    return build_model(PEERS[name], 'mmpretrain').eval()


def build_detector(config: str, root: str = '.') -> Dict[str, nn.Module]:
    """Forms of a detector config: ``deploy``, ``fused`` (and ``fused-python`` where it has
    fused dense stages) for ours, ``as-is`` for a peer."""
    model = build_config_model(config, root)
    if not sparse_layers(model):
        return {'as-is': model}
    forms = dict(deploy=model, fused=fuse_for_inference(copy.deepcopy(model)))
    if has_dense_stages(forms['fused']):
        forms['fused-python'] = fuse_for_inference(copy.deepcopy(model), backend='python')
    return forms


def has_dense_stages(model: nn.Module) -> bool:
    """Whether a fused model has dense stages (what the fused ``backend`` changes)."""
    return any(isinstance(m, FusedSFRDenseStage) for m in model.modules())


@dataclass
class Row:
    """One timed model: ``model`` in ``form`` at ``threads`` x ``batch``."""
    model: str
    form: str
    runtime: str
    threads: int
    batch: int
    size: tuple
    timing: Timing
    peer: Optional[str] = None
    extra: dict = field(default_factory=dict)


def _classifier_forward(model):
    return lambda x: model(x, mode='tensor')


def export_for_timing(model: nn.Module, x: torch.Tensor, path: str, legacy: bool) -> float:
    """Export ``model(x, mode='tensor')`` to ONNX; return the max abs difference of
    onnxruntime against PyTorch. The legacy exporter is quick; ours use the dynamo
    exporter on their :func:`~mmcnv2.apis.export.export_form`, as
    ``tools/export_onnx.py`` does."""
    import warnings

    wrapper = TensorOutputs(model, backbone_only=False).eval()
    exported = wrapper if legacy else TensorOutputs(export_form(model), backbone_only=False)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        kwargs = dict(dynamo=False, opset_version=17) if legacy else dict(dynamo=True)
        torch.onnx.export(exported, (x, ), path, input_names=['inputs'], **kwargs)
    out = onnxruntime_session(path).run(None, {'inputs': x.numpy()})[0]
    with torch.no_grad():
        ref = wrapper(x).numpy()
    return float(abs(out - ref).max())


def random_calibration(path: str, batches: int = 2) -> List[dict]:
    """Random normal calibration inputs for an exported classifier (``inputs``) or whole
    detector (``inputs``, ``img_shape``, ``scale_factor``): timing does not depend on
    the values the scales come from (``tools/quantize_onnx.py`` calibrates on data)."""
    names, dims = input_layout(path)
    shape = [1 if d is None else d for d in dims]
    rng = np.random.default_rng(0)
    feeds = []
    for _ in range(batches):
        feed = dict(inputs=rng.standard_normal(shape, np.float32))
        if names != ['inputs']:
            feed.update(img_shape=np.array([shape[2:]] * shape[0], np.int64),
                        scale_factor=np.ones((shape[0], 2), np.float32))
        feeds.append(feed)
    return feeds


def quantize_for_timing(path: str) -> str:
    """An int8 QDQ copy (``*_int8.onnx``) of an exported file, calibrated on random inputs."""

    out = path[:-len('.onnx')] + '_int8.onnx'
    quantize_onnx(path, out, random_calibration(path))
    return out


def whole_detector_for_timing(config: str, root: str, folder: str, name: str,
                              shape: Sequence[int]) -> str:
    """Export ``config``'s detector whole (post-processing included, random weights, every
    LGC/SFR fully sparsified or in deploy form) at ``shape``, as ``tools/export_onnx.py --whole-detector``
    does; return the ``.onnx`` path."""

    model = build_config_model(config, root)
    for _, layer in sparse_layers(model):
        if not layer.deploy:  # the detector configs build the deploy form already
            layer.sparsify(1.0)
    ckpt = osp.join(folder, f'{name}.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    out = osp.join(folder, f'{name}_{shape[0]}x{shape[1]}.onnx')
    export_detector_onnx(osp.join(root, config), ckpt, out, shape)
    return out


def time_onnx_file(path: str, feeds: dict, runtimes: Sequence[str], threads: Sequence[int],
                   timed: dict) -> List[tuple]:
    """``(runtime, threads, Timing)`` of one ONNX file in each runtime at each thread count."""
    out = []
    for runtime in runtimes:
        for t in threads:
            session = open_session(path, runtime, t)
            out.append((runtime, t, time_forward(lambda: session.run(feeds), **timed)))
    return out


class StepLog:
    """Progress lines ``[phase k/N] message`` over a phase of ``N`` known steps.

    Example:
        >>> lines = []
        >>> step = StepLog(lines.append, 'build', 2)
        >>> step('building A'); step('building B')
        >>> lines
        ['[build 1/2] building A', '[build 2/2] building B']
    """

    def __init__(self, log: Callable[[str], None], phase: str, total: int):
        self.log, self.phase, self.total, self.done = log, phase, total, 0

    def __call__(self, message: str):
        self.done += 1
        self.log(f'[{self.phase} {self.done}/{self.total}] {message}')


def run_benchmark(root: str = '.', threads: Sequence[int] = None, batches: Sequence[int] = (1, 8),
                  size: int = 224, forms: Sequence[str] = FORMS,
                  models: Optional[Sequence[str]] = None, detectors: bool = True,
                  onnx: Sequence[str] = ('CondenseNetV2-A', 'CondenseNetV2-B', 'CondenseNetV2-C',
                                         'SFR-ShuffleNetV2-1.0x'),
                  budget_s: float = 1.0, malloc: str = 'retain',
                  runtimes: Sequence[str] = ('onnxruntime', ), int8: bool = False,
                  whole_detectors: Sequence[Sequence[int]] = (),
                  log: Callable[[str], None] = print) -> dict:
    """Time our models in ``forms`` and the peers, side by side.

    Args:
        root (str): Repository root (for the configs).
        threads (Sequence[int], optional): Thread counts; default ``(1, all cores)``.
        batches (Sequence[int]): Batch sizes at ``size`` x ``size``.
        size (int): Input side of the classifiers.
        forms (Sequence[str]): Forms of ours (:data:`FORMS`): ``training``
            (fully sparsified masks), ``deploy`` (condensed), ``fused``
            (:func:`mmcnv2.models.fuse_for_inference`, its default backend: the
            C++ loop where built) and ``fused-python`` (its Python loop; only
            for models with dense stages, since it changes nothing else).
        models (Sequence[str], optional): Subset of :data:`OURS` (their peers
            come along). Defaults to all.
        detectors (bool): Also time :data:`DETECTORS` (deploy and fused
            forms) and their peers at 800 x 1333, batch 1, with the largest
            thread count (a pass takes seconds there).
        onnx (Sequence[str]): Ours to export (deploy form) and time in
            ``runtimes`` at batch 1, with their peers, all files of one runtime and
            thread count in rounds of one run each.
        budget_s (float): Seconds of timed passes per measurement (at least
            5 passes after 3 warm-up ones).
        malloc (str): ``'retain'`` or ``'default'``, see
            :func:`set_malloc_policy`; applied before anything is built.
        runtimes (Sequence[str]): Runtimes of the ONNX files
            (:data:`mmcnv2.apis.runtimes.RUNTIMES`: ``onnxruntime``, ``openvino``).
        int8 (bool): Also time each ONNX file statically quantized to int8
            (:func:`quantize_for_timing`; form ``deploy-int8`` / ``as-is-int8``).
        whole_detectors (Sequence[Sequence[int]]): Input sizes ``(H, W)`` at which
            :data:`DETECTORS` and their peers are exported whole (box decoding and
            NMS included, :func:`whole_detector_for_timing`) and timed in
            ``runtimes`` at batch 1, form ``whole`` (and ``whole-int8``); e.g.
            :data:`WHOLE_DETECTOR_SIZES`. Random weights leave few boxes for NMS.
        log (callable): Progress messages; each step of a phase (building,
            PyTorch rounds, ONNX exports, detectors) says ``k/N`` of it.

    Returns:
        dict: ``machine``, ``settings`` and ``rows`` (see :class:`Row`).

    The process's torch thread count is restored afterwards.
    """
    threads_before = torch.get_num_threads()
    try:
        return _run_benchmark(root, threads, batches, size, forms, models, detectors, onnx,
                              budget_s, malloc, runtimes, int8, whole_detectors, log)
    finally:
        torch.set_num_threads(threads_before)


def _run_benchmark(root, threads, batches, size, forms, models, detectors, onnx, budget_s, malloc,
                   runtimes, int8, whole_detectors, log) -> dict:
    """:func:`run_benchmark`'s measurements (it restores the thread count)."""
    threads = tuple(threads or sorted({1, os.cpu_count() or 1}))
    names = list(models or OURS)
    check_choices('models', names, OURS)
    check_choices('forms', forms, FORMS)
    runtimes = check_runtimes(runtimes)
    whole_detectors = [tuple(s) for s in whole_detectors]
    if not all(len(s) == 2 and all(isinstance(v, int) and v >= 32 for v in s)
               for s in whole_detectors):
        raise ValueError(f'whole_detectors must be (H, W) sizes of ints >= 32, got '
                         f'{whole_detectors}')
    timed = dict(warmup=3, min_runs=5, max_runs=30, budget_s=budget_s)
    malloc = set_malloc_policy(malloc)
    log(f'malloc: {malloc}')
    entries = []  # (name, form, module, peer)
    peer_names = [p for p in PEERS if models is None or p in {OURS[n][1] for n in names}]
    step = StepLog(log, 'build', len(names) + len(peer_names))
    for name in names:
        step(f'building {name}')
        built = build_ours(OURS[name][0], root)
        if 'fused' in forms:
            built['fused'] = fuse_for_inference(copy.deepcopy(built['deploy']))
        if 'fused-python' in forms:
            python = fuse_for_inference(copy.deepcopy(built['deploy']), backend='python')
            if has_dense_stages(python):
                built['fused-python'] = python
        for form in forms:
            if form in built:
                entries.append((name, form, built[form], OURS[name][1]))
    for name in peer_names:
        step(f'building {name}')
        peer = build_peer(name)
        entries.append((name, 'as-is', peer, None))
        if name.startswith('ShuffleNetV2'):  # the layout our fused SFR-ShuffleNetV2 uses
            cl = copy.deepcopy(peer).to(memory_format=torch.channels_last)
            entries.append((name, 'channels-last', cl, None))
    rows = []
    step = StepLog(log, 'pytorch', len(threads) * len(batches))
    for t in threads:
        torch.set_num_threads(t)
        for b in batches:
            step(f'timing {len(entries)} models round-robin, threads={t} batch={b}')
            x = torch.randn(b, 3, size, size)
            fwds = [_classifier_forward(module) for _, _, module, _ in entries]
            with torch.inference_mode():
                timings = time_round_robin([lambda f=f: f(x) for f in fwds], **timed)
            for (name, form, _, peer), timing in zip(entries, timings):
                rows.append(Row(name, form, 'pytorch', t, b, (size, size), timing, peer))
                log(f'{name:<24}{form:<9} threads={t} batch={b}: {timing} ms')
    if onnx:
        with tempfile.TemporaryDirectory() as tmp:
            x = torch.randn(1, 3, size, size)
            todo = [(n, 'deploy', m, p) for n, f, m, p in entries if f == 'deploy' and n in onnx]
            todo += [(n, f, m, p) for n, f, m, p in entries
                     if f == 'as-is' and n in {OURS[o][1] for o in onnx if o in OURS}]
            step = StepLog(log, 'onnx', len(todo))
            files = []  # (name, form, file, peer, diff)
            for name, form, module, peer in todo:
                path = osp.join(tmp, f'{name}.onnx')
                step(f'exporting {name} to ONNX' + (' and quantizing it' if int8 else ''))
                diff = export_for_timing(module, x, path, legacy=peer is None)
                files.append((name, form, path, peer, diff))
                if int8:
                    files.append((name, form + INT8, quantize_for_timing(path), peer, diff))
            # round robin over the files, as the PyTorch forms: a drift of the machine's
            # speed hits ours and the peers alike
            feeds = {'inputs': x.numpy()}
            step = StepLog(log, 'onnx timing', len(runtimes) * len(threads))
            for runtime in runtimes:
                for t in threads:
                    step(f'timing {len(files)} ONNX files round-robin in {runtime}, '
                         f'threads={t}')
                    sessions = [open_session(f, runtime, t) for _, _, f, _, _ in files]
                    timings = time_round_robin([lambda s=s: s.run(feeds) for s in sessions],
                                               **timed)
                    for (name, form, _, peer, diff), timing in zip(files, timings):
                        rows.append(Row(name, form, runtime, t, 1, (size, size), timing, peer,
                                        dict(max_abs_diff=diff)))
                        log(f'{name:<24}{form:<12} {runtime} threads={t}: {timing} ms')
    if whole_detectors:
        with tempfile.TemporaryDirectory() as tmp:
            todo = [(n, c, p) for n, (c, p) in DETECTORS.items()]
            todo += [(n, c, None) for n, c in DETECTOR_PEERS.items()]
            step = StepLog(log, 'whole detectors', len(todo) * len(whole_detectors))
            det_timed = dict(warmup=2, min_runs=3, max_runs=10, budget_s=budget_s)
            for shape in whole_detectors:
                for name, config, peer in todo:
                    step(f'exporting {name} whole at {shape[0]}x{shape[1]} and timing it')
                    path = whole_detector_for_timing(config, root, tmp, name, shape)
                    files = [('whole', path)]
                    if int8:
                        files.append(('whole' + INT8, quantize_for_timing(path)))
                    feeds = random_calibration(path, 1)[0]
                    for f, file in files:
                        for runtime, t, timing in time_onnx_file(file, feeds, runtimes,
                                                                 threads, det_timed):
                            rows.append(Row(name, f, runtime, t, 1, shape, timing, peer))
                            log(f'{name:<28}{f:<12} {runtime} threads={t}: {timing} ms')
    if detectors:
        t = max(threads)
        torch.set_num_threads(t)
        det_entries = []
        step = StepLog(log, 'build detectors', len(DETECTORS) + len(DETECTOR_PEERS))
        for name, (config, peer) in DETECTORS.items():
            step(f'building {name}')
            for form, module in build_detector(config, root).items():
                if form in forms:
                    det_entries.append((name, form, module, peer))
        for name, config in DETECTOR_PEERS.items():
            step(f'building {name}')
            for form, module in build_detector(config, root).items():
                det_entries.append((name, form, module, None))
        x = torch.randn(1, 3, 800, 1333)
        step = StepLog(log, 'detectors', len(det_entries))
        for name, form, module, peer in det_entries:
            step(f'timing {name} {form} at 800x1333')
            fwd = _classifier_forward(module)
            with torch.inference_mode():
                timing = time_forward(lambda: fwd(x), warmup=2, min_runs=3, max_runs=5,
                                      budget_s=budget_s)
            rows.append(Row(name, form, 'pytorch', t, 1, (800, 1333), timing, peer))
            log(f'{name:<28}{form:<9} threads={t}: {timing} ms')
    settings = dict(threads=threads, batches=tuple(batches), size=size, forms=tuple(forms),
                    budget_s=budget_s, malloc=malloc, runtimes=tuple(runtimes), int8=int8,
                    whole_detectors=tuple(whole_detectors),
                    timing='median (25th-75th percentile) of >= 5 passes after 3 warm-up '
                    'passes, in rounds of one pass per model, torch.inference_mode, eval mode')
    return dict(machine=machine_info(), settings=settings, rows=rows)


def peer_form(form: str) -> str:
    """The peer's form that a row of ours in ``form`` is compared with: ``as-is``, or for
    a whole detector ``whole``, with ``-int8`` for int8 files.

    Example:
        >>> peer_form('deploy'), peer_form('deploy-int8'), peer_form('whole-int8')
        ('as-is', 'as-is-int8', 'whole-int8')
    """
    base = 'whole' if form.startswith('whole') else 'as-is'
    return base + INT8 if form.endswith(INT8) else base


def _peer_timing(rows: List[Row], row: Row) -> Optional[Timing]:
    for r in rows:
        if (r.model == row.peer and r.form == peer_form(row.form) and r.runtime == row.runtime
                and r.threads == row.threads and r.batch == row.batch and r.size == row.size):
            return r.timing
    return None


def format_table(result: dict, markdown: bool = False) -> str:
    """The rows as a table with the ratio of each of ours to its same-FLOPs peer."""
    rows = result['rows']
    head = ['model', 'form', 'runtime', 'threads', 'batch', 'input', 'ms: median (IQR)',
            'peer', 'x peer']
    lines = []
    for r in rows:
        peer = _peer_timing(rows, r) if r.peer else None
        ratio = f'{r.timing.median / peer.median:.2f}' if peer else ''
        lines.append([r.model, r.form, r.runtime, str(r.threads), str(r.batch),
                      f'{r.size[0]}x{r.size[1]}', str(r.timing), r.peer or '', ratio])
    return _render(head, lines, markdown)


#: Column order of the summary: CPU latency, onnxruntime, then the device benchmark's
#: (:mod:`mmcnv2_tools.device_benchmark`) inference and training runtimes.
RUNTIMES = ('pytorch', 'onnxruntime', 'openvino', 'cpu', 'cpu-train', 'cuda', 'cuda-train')


def is_training(row: Row) -> bool:
    """Whether ``row`` times training steps (its summary cell is a throughput)."""
    return row.runtime.endswith('-train')


def _setting_label(runtime: str, threads: int, batch: int) -> str:
    names = dict(pytorch='PyTorch', onnxruntime='ORT', openvino='OV')
    if runtime in names:
        return f'{names[runtime]} {threads} thr b{batch}'
    device = runtime.split('-')[0].upper()
    return f'{device} train b{batch} img/s' if runtime.endswith('-train') else f'{device} b{batch}'


def format_summary(result: dict, markdown: bool = False) -> str:
    """One line per model and form, one column per runtime/threads/batch setting.

    Cells are the median in ms and, for ours, the ratio to the same-FLOPs
    peer (``as-is`` form, same setting) in brackets; in training columns
    (``... train ... img/s``) they are the throughput in images/s and, for
    ours, the throughput relative to the peer's (above 1: faster).
    """
    rows = result['rows']
    order = {name: i for i, name in enumerate(RUNTIMES)}
    settings = sorted({(order.get(r.runtime, len(order)), r.runtime, r.threads, r.batch)
                       for r in rows})
    keys = list(dict.fromkeys((r.model, r.form, r.size) for r in rows))
    head = ['model', 'form', 'input'] + [_setting_label(*s[1:]) for s in settings]
    cells = {(r.model, r.form, r.size, r.runtime, r.threads, r.batch): r for r in rows}
    lines = []
    for model, form, size in keys:
        line = [model, form, f'{size[0]}x{size[1]}']
        for setting in settings:
            r = cells.get((model, form, size) + setting[1:])
            peer = _peer_timing(rows, r) if r is not None and r.peer else None
            if r is None:
                line.append('')
            elif is_training(r):
                line.append(f"{r.extra['images_per_s']:.0f}"
                            + (f' ({peer.median / r.timing.median:.2f}x)' if peer else ''))
            else:
                line.append(f'{r.timing.median:.1f}'
                            + (f' ({r.timing.median / peer.median:.2f}x)' if peer else ''))
        lines.append(line)
    return _render(head, lines, markdown)


def _render(head: List[str], lines: List[List[str]], markdown: bool) -> str:
    if markdown:
        out = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
        out += ['| ' + ' | '.join(line) + ' |' for line in lines]
        return '\n'.join(out)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    fmt = '  '.join(f'{{:<{w}}}' for w in widths)
    return '\n'.join([fmt.format(*head)] + [fmt.format(*line).rstrip() for line in lines])


def from_json(path: str) -> dict:
    """Read a result written by :func:`to_json` back (to print its tables again)."""
    with open(path) as f:
        data = json.load(f)
    data['rows'] = [Row(**dict(r, timing=Timing(**r['timing']), size=tuple(r['size'])))
                    for r in data['rows']]
    return data


def to_json(result: dict, path: str):
    """Write the result as JSON (timings in milliseconds)."""
    rows = [dict(r.__dict__, timing=r.timing.__dict__, size=list(r.size)) for r in result['rows']]
    with open(path, 'w') as f:
        json.dump(dict(result, rows=rows), f, indent=1)
