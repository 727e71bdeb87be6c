"""The device benchmark (tools/benchmark.py --device): its code path on the CPU with tiny
settings; correctness only, no timing asserted."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmcnv2_tools.benchmark import format_summary, format_table
from mmcnv2_tools.device_benchmark import LAYOUTS, check_device, run_device_benchmark

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_tiny_cpu_run_times_training_inference_and_a_detector_iteration():
    result = run_device_benchmark(ROOT, device='cpu', train_batch=2, batches=[1], size=32,
                                  models=['CondenseNetV2-A'], det_batch=1, det_size=(64, 96),
                                  det_amp='none', budget_s=0.0, log=lambda _: None)
    rows = {(r.model, r.form, r.runtime): r for r in result['rows']}
    assert set(rows) == {
        ('CondenseNetV2-A', 'training', 'cpu-train'), ('ShuffleNetV2-0.5x', 'as-is', 'cpu-train'),
        ('CondenseNetV2-A', 'deploy', 'cpu'), ('CondenseNetV2-A', 'fused', 'cpu'),
        ('ShuffleNetV2-0.5x', 'as-is', 'cpu'),
        ('RetinaNet-CondenseNetV2-C', 'training', 'cpu-train'),
        ('RetinaNet-ShuffleNetV2-1.5x', 'training', 'cpu-train')}
    train = rows[('CondenseNetV2-A', 'training', 'cpu-train')]
    assert train.peer == 'ShuffleNetV2-0.5x' and train.batch == 2 and train.size == (32, 32)
    assert train.extra['layout'] in LAYOUTS and set(train.extra['ms_per_layout']) == set(LAYOUTS)
    assert train.timing.median == min(train.extra['ms_per_layout'].values())
    assert train.extra['images_per_s'] == pytest.approx(2e3 / train.timing.median)
    assert train.extra['amp'] == 'bfloat16'
    det = rows[('RetinaNet-CondenseNetV2-C', 'training', 'cpu-train')]
    assert det.size == (64, 96) and det.peer == 'RetinaNet-ShuffleNetV2-1.5x'
    assert det.extra['amp'] == 'none'  # fp32: low-precision convolutions are slow on CPUs
    assert all(r.timing.runs >= 3 and r.timing.median > 0 for r in result['rows'])
    assert result['machine']['device'] == 'cpu' and result['settings']['amp'] == 'bfloat16'
    # summary: throughput and its ratio to the peer in training columns, ms elsewhere
    summary = format_summary(result, markdown=True).splitlines()
    assert summary[0] == ('| model | form | input | CPU b1 | CPU train b1 img/s '
                          '| CPU train b2 img/s |')
    peer = rows[('ShuffleNetV2-0.5x', 'as-is', 'cpu-train')]
    line = next(s for s in summary if s.startswith('| CondenseNetV2-A | training |'))
    ratio = peer.timing.median / train.timing.median
    assert f"| {train.extra['images_per_s']:.0f} ({ratio:.2f}x) |" in line
    assert len(format_table(result).splitlines()) == 1 + len(result['rows'])


def test_device_and_dtype_errors_name_the_allowed_values():
    with pytest.raises(ValueError, match=r"device must be one of \['cpu', 'cuda'\]"):
        check_device('tpu')
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda' but torch sees no GPU"):
            check_device('cuda')
    with pytest.raises(ValueError, match=r"amp must be one of \['bfloat16', 'float16', 'none'\]"):
        run_device_benchmark(ROOT, device='cpu', amp='fp8', models=['CondenseNetV2-A'])
    with pytest.raises(ValueError, match=r"forms must be among \['deploy', 'fused'\]"):
        run_device_benchmark(ROOT, device='cpu', forms=['fused-python'])


def test_cli_device_benchmark_on_the_cpu(tmp_path):
    out = tmp_path / 'device.json'
    proc = subprocess.run(
        [sys.executable, 'tools/benchmark.py', '--device', 'cpu', '--train', '--models',
         'SFR-ShuffleNetV2-0.5x', '--train-batch', '2', '--batches', '1', '--size', '32',
         '--forms', 'deploy', '--no-detectors', '--budget', '0', '--markdown', '--out',
         str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '| SFR-ShuffleNetV2-0.5x | training | 32x32 |' in proc.stdout
    data = json.loads(out.read_text())
    assert {(r['model'], r['runtime']) for r in data['rows']} == {
        ('SFR-ShuffleNetV2-0.5x', 'cpu-train'), ('ShuffleNetV2-0.5x', 'cpu-train'),
        ('SFR-ShuffleNetV2-0.5x', 'cpu'), ('ShuffleNetV2-0.5x', 'cpu')}
