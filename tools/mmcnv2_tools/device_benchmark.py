"""Training throughput and inference latency on a device (``tools/benchmark.py --device``).

What people who train these models on GPUs want to know, against the same-FLOPs peers of
:mod:`mmcnv2_tools.benchmark` (CondenseNetV2-A/B/C against ShuffleNetV2 0.5x/1.0x/1.5x,
SFR-ShuffleNetV2 against the plain ShuffleNetV2 of its width, MobileNetV2/V3 alongside):

* **training throughput** (images/s) of the training forms (dense weights and masks, as
  during the paper's sparsification; masks at their final density), one step being
  forward, cross-entropy, backward and an SGD step, under autocast (bf16 by default), in
  the memory layout that is faster for each model (contiguous or channels-last, both timed);
* **inference latency** of the deploy and fused forms and the peers, fp32, at each batch;
* **one detector training iteration** (RetinaNet-CondenseNetV2-C against
  RetinaNet-ShuffleNetV2-1.5x, batch 2 at 800 x 1333) under fp16 autocast with a gradient
  scaler (mmcv's focal loss kernel has no bf16).

Timings are medians of passes timed in rounds of one pass per model, as on the CPU, each
pass ending with a device synchronize. On the CPU the same code runs with tiny settings
(``tools/benchmark.py --device cpu --train``), which is how the tests exercise it.
"""
import copy
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcnv2.analysis.timing import machine_info, time_round_robin
from mmcnv2.models.deploy import fuse_for_inference

from .benchmark import (DETECTOR_PEERS, DETECTORS, OURS, PEERS, Row, build_config_model,
                        build_ours, build_peer, check_choices)

#: Devices and autocast dtypes the device benchmark takes.
DEVICES = ('cpu', 'cuda')
AMP_DTYPES = {'bfloat16': torch.bfloat16, 'float16': torch.float16, 'none': None}
#: Forms of ours timed for inference on the device.
INFERENCE_FORMS = ('deploy', 'fused')
LAYOUTS = ('contiguous', 'channels-last')


def check_device(device: str) -> torch.device:
    """``torch.device(device)`` if the device benchmark can run there.

    Raises:
        ValueError: ``device`` is not one of :data:`DEVICES`, or is ``'cuda'``
            where torch sees no GPU.
    """
    if device not in DEVICES:
        raise ValueError(f'device must be one of {list(DEVICES)}, got {device!r}')
    if device == 'cuda' and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no GPU (torch "
                         f'{torch.__version__}, CUDA {torch.version.cuda})')
    return torch.device(device)


def synchronize(device: torch.device):
    """Wait for the device's queued work (no-op on the CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def device_info(device: torch.device) -> dict:
    """The accelerator and its libraries, for the record."""
    if device.type != 'cuda':
        return dict(device='cpu')
    props = torch.cuda.get_device_properties(device)
    return dict(device='cuda', gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30),
                capability=f'{props.major}.{props.minor}', cuda=torch.version.cuda,
                cudnn=torch.backends.cudnn.version(),
                tf32_conv=torch.backends.cudnn.allow_tf32,
                tf32_matmul=torch.backends.cuda.matmul.allow_tf32)


def amp_train_step(loss_fn: Callable[[], torch.Tensor], params, device: torch.device,
                   amp: Optional[torch.dtype]) -> Callable[[], None]:
    """A training step: ``loss_fn()`` under autocast (``amp``; None: fp32), backward
    (through a gradient scaler for fp16), an SGD step, then a device synchronize."""
    optimizer = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=amp is torch.float16)

    def step():
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss = loss_fn()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)

    return step


def classifier_train_step(model: nn.Module, x: torch.Tensor, labels: torch.Tensor,
                          amp: Optional[torch.dtype]) -> Callable[[], None]:
    """One training step of an image classifier: forward, cross-entropy, backward, SGD.

    Example:
        >>> import torch
        >>> from mmpretrain.models import ImageClassifier
        >>> net = ImageClassifier(backbone=dict(type='ResNet', depth=18),
        ...                       neck=dict(type='GlobalAveragePooling'),
        ...                       head=dict(type='LinearClsHead', num_classes=10,
        ...                                 in_channels=512)).train()
        >>> w = net.backbone.conv1.weight.detach().clone()
        >>> classifier_train_step(net, torch.randn(2, 3, 32, 32),
        ...                       torch.tensor([1, 2]), torch.bfloat16)()
        >>> bool((net.backbone.conv1.weight != w).any())
        True
    """
    return amp_train_step(lambda: F.cross_entropy(model(x, mode='tensor').float(), labels),
                          model.parameters(), x.device, amp)


def detector_train_step(model: nn.Module, data: dict,
                        amp: Optional[torch.dtype]) -> Callable[[], None]:
    """One training iteration of an mmdet detector on preprocessed ``data``."""
    return amp_train_step(lambda: model.parse_losses(model(**data, mode='loss'))[0],
                          [p for p in model.parameters() if p.requires_grad],
                          next(model.parameters()).device, amp)


def _classifiers(root: str, names: List[str], forms: Sequence[str], all_peers: bool,
                 log: Callable[[str], None]) -> List[Tuple[str, str, nn.Module, Optional[str]]]:
    """(name, form, model, peer) of ours in ``forms`` and of the peers (``as-is``): every
    peer when ``all_peers``, else the ShuffleNetV2 of each of ``names``."""
    entries = []
    for name in names:
        log(f'building {name}')
        built = build_ours(OURS[name][0], root)
        if 'fused' in forms:
            built['fused'] = fuse_for_inference(copy.deepcopy(built['deploy']))
        entries += [(name, form, built[form], OURS[name][1]) for form in forms if form in built]
    for name in PEERS:
        if all_peers or name in {OURS[n][1] for n in names}:
            log(f'building {name}')
            entries.append((name, 'as-is', build_peer(name), None))
    return entries


def time_training(entries, device: torch.device, batch: int, size: int,
                  amp: Optional[torch.dtype], timed: dict, log) -> List[Row]:
    """Training throughput of each model, in its faster memory layout."""
    x = torch.randn(batch, 3, size, size, device=device)
    labels = torch.randint(0, 1000, (batch, ), device=device)
    steps, keys = [], []
    for name, form, model, peer in entries:
        for layout in LAYOUTS:
            m = copy.deepcopy(model).to(device).train()
            inputs = x
            if layout == 'channels-last':
                m = m.to(memory_format=torch.channels_last)
                inputs = x.contiguous(memory_format=torch.channels_last)
            steps.append(classifier_train_step(m, inputs, labels, amp))
            keys.append((name, form, peer, layout))
    timings = time_round_robin(steps, **timed)
    by_model: Dict[Tuple[str, str, Optional[str]], dict] = {}
    for (name, form, peer, layout), timing in zip(keys, timings):
        by_model.setdefault((name, form, peer), {})[layout] = timing
    rows = []
    for (name, form, peer), layouts in by_model.items():
        layout = min(layouts, key=lambda k: layouts[k].median)  # the faster one
        timing = layouts[layout]
        extra = dict(images_per_s=batch * 1e3 / timing.median, layout=layout,
                     amp=str(amp).replace('torch.', '') if amp else 'none',
                     ms_per_layout={k: t.median for k, t in layouts.items()})
        rows.append(Row(name, form, f'{device.type}-train', torch.get_num_threads(), batch,
                        (size, size), timing, peer, extra))
        log(f'{name:<24}{form:<9} train b{batch} ({layout}): {extra["images_per_s"]:.0f} img/s')
    return rows


def time_inference(entries, device: torch.device, batches: Sequence[int], size: int,
                   timed: dict, log) -> List[Row]:
    """Latency of each model (eval mode, fp32, inference mode) at each batch size."""
    models = [copy.deepcopy(m).to(device).eval() for _, _, m, _ in entries]
    rows = []
    for b in batches:
        x = torch.randn(b, 3, size, size, device=device)

        def forward(model):
            def fn():
                model(x, mode='tensor')
                synchronize(device)
            return fn

        with torch.inference_mode():
            timings = time_round_robin([forward(m) for m in models], **timed)
        for (name, form, _, peer), timing in zip(entries, timings):
            rows.append(Row(name, form, device.type, torch.get_num_threads(), b, (size, size),
                            timing, peer))
            log(f'{name:<24}{form:<9} {device.type} b{b}: {timing} ms')
    return rows


def time_detector_training(root: str, device: torch.device, batch: int, size: Tuple[int, int],
                           amp: Optional[torch.dtype], timed: dict, log) -> List[Row]:
    """One training iteration of each detector of :data:`DETECTORS` and its peer."""
    from mmdet.testing import demo_mm_inputs

    entries = [(n, c, p) for n, (c, p) in DETECTORS.items()]
    entries += [(n, c, None) for n, c in DETECTOR_PEERS.items()]
    steps = []
    for name, config, _ in entries:
        log(f'building {name}')
        model = build_config_model(config, root).to(device).train()
        packed = demo_mm_inputs(batch, [[3, *size]] * batch, num_items=[10] * batch)
        steps.append(detector_train_step(model, model.data_preprocessor(packed, True), amp))
    timings = time_round_robin(steps, **dict(timed, warmup=2, min_runs=3))
    rows = []
    for (name, _, peer), timing in zip(entries, timings):
        extra = dict(images_per_s=batch * 1e3 / timing.median,
                     amp=str(amp).replace('torch.', '') if amp else 'none')
        rows.append(Row(name, 'training', f'{device.type}-train', torch.get_num_threads(),
                        batch, tuple(size), timing, peer, extra))
        log(f'{name:<28} train b{batch} {size[0]}x{size[1]}: {timing} ms')
    return rows


def run_device_benchmark(root: str = '.', device: str = 'cuda', train_batch: int = 64,
                         batches: Sequence[int] = (1, 64), size: int = 224,
                         forms: Sequence[str] = INFERENCE_FORMS,
                         models: Optional[Sequence[str]] = None, train: bool = True,
                         detectors: bool = True, det_batch: int = 2,
                         det_size: Tuple[int, int] = (800, 1333), amp: str = 'bfloat16',
                         det_amp: str = 'float16', budget_s: float = 1.0,
                         log: Callable[[str], None] = print) -> dict:
    """Training throughput and inference latency of ours and the peers on ``device``.

    Args:
        root (str): Repository root (for the configs).
        device (str): ``'cuda'`` or ``'cpu'`` (the same code with small settings,
            for tests).
        train_batch (int): Batch of the classifier training steps.
        batches (Sequence[int]): Batch sizes of the inference latency.
        size (int): Input side of the classifiers.
        forms (Sequence[str]): Forms of ours timed for inference
            (:data:`INFERENCE_FORMS`); training always times the training form.
        models (Sequence[str], optional): Subset of :data:`OURS` (their peers
            come along). Defaults to all, with every peer.
        train (bool): Time the classifier training steps.
        detectors (bool): Time one training iteration of :data:`DETECTORS` and
            their peers at ``det_size``, batch ``det_batch``.
        amp (str): Autocast dtype of the classifier training steps
            (:data:`AMP_DTYPES`; ``'none'``: fp32).
        det_amp (str): Autocast dtype of the detector iterations (fp16 by
            default: mmcv's focal loss kernel has no bf16).
        budget_s (float): Seconds of timed passes per measurement (at least 5
            passes after 3 warm-up ones).
        log (callable): Progress messages.

    Returns:
        dict: ``machine``, ``settings`` and ``rows`` (:class:`Row`; ``runtime``
        is ``'<device>'`` for inference and ``'<device>-train'`` for training,
        whose ``extra`` holds ``images_per_s``, ``layout`` and ``amp``).
    """
    dev = check_device(device)
    names = list(models or OURS)
    check_choices('models', names, OURS)
    check_choices('forms', forms, INFERENCE_FORMS)
    for arg, value in (('amp', amp), ('det_amp', det_amp)):
        if value not in AMP_DTYPES:
            raise ValueError(f'{arg} must be one of {list(AMP_DTYPES)}, got {value!r}')
    timed = dict(warmup=3, min_runs=5, max_runs=30, budget_s=budget_s)
    entries = _classifiers(root, names, (('training', ) if train else ()) + tuple(forms),
                           models is None, log)
    rows = []
    if train:
        training = [e for e in entries if e[1] in ('training', 'as-is')]
        rows += time_training(training, dev, train_batch, size, AMP_DTYPES[amp], timed, log)
    inference = [e for e in entries if e[1] != 'training']
    rows += time_inference(inference, dev, batches, size, timed, log)
    if detectors:
        rows += time_detector_training(root, dev, det_batch, det_size, AMP_DTYPES[det_amp],
                                       timed, log)
    settings = dict(device=device, train_batch=train_batch, batches=tuple(batches), size=size,
                    forms=tuple(forms), amp=amp, det_amp=det_amp, det_batch=det_batch,
                    det_size=tuple(det_size), budget_s=budget_s,
                    timing='median (25th-75th percentile) of >= 5 passes after 3 warm-up '
                    'passes, in rounds of one pass per model, each ending with a device '
                    'synchronize; training: forward, loss, backward, SGD step under autocast, '
                    'in the faster memory layout of each model; inference: eval mode, fp32')
    return dict(machine=dict(machine_info(), **device_info(dev)), settings=settings, rows=rows)
