"""tools/benchmark.py, mmcnv2_tools.benchmark and mmcnv2.analysis.timing: correctness only, no timing asserted."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmcnv2.analysis.timing import Timing, set_malloc_policy, time_forward, time_round_robin
from mmcnv2.models.layers import FusedSFRDenseStage
from mmcnv2_tools.benchmark import (OURS, PEERS, Row, build_detector, build_ours, build_peer,
                                    export_for_timing, format_summary, format_table, from_json,
                                    quantize_for_timing, random_calibration, run_benchmark,
                                    time_onnx_file, to_json)
from tests.tool_utils import tool

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_time_forward_counts_passes_and_orders_quantiles():
    calls = []
    t = time_forward(lambda: calls.append(1), warmup=2, min_runs=5, max_runs=9, budget_s=0.0)
    assert t.runs == 5 and len(calls) == 7  # 2 warm-up passes are not timed
    assert t.p25 <= t.median <= t.p75
    t = time_forward(lambda: None, warmup=0, min_runs=1, max_runs=12, budget_s=10.0)
    assert t.runs == 12  # max_runs caps a generous budget


def test_round_robin_interleaves_passes_and_times_each_function(monkeypatch):
    """Each function gets the time of its own passes: a fake clock that every pass advances
    by its function's own amount (1 and 3 ms) stands in for the real one, so nothing here
    depends on how fast or busy the machine is."""
    import mmcnv2.analysis.timing as timing

    clock, order = [0.0], []

    def work(name, seconds):
        order.append(name)
        clock[0] += seconds

    monkeypatch.setattr(timing.time, 'perf_counter', lambda: clock[0])
    fast, slow = time_round_robin([lambda: work('a', 0.001), lambda: work('b', 0.003)],
                                  warmup=1, min_runs=6, max_runs=6, budget_s=0.0)
    assert order == ['a', 'b'] * 7  # one warm-up round, then 6 rounds of one pass each
    assert fast.runs == slow.runs == 6
    assert fast.median == pytest.approx(1.0) and slow.median == pytest.approx(3.0)
    assert slow.p25 == pytest.approx(3.0) and slow.p75 == pytest.approx(3.0)


def test_malloc_policy_is_validated_and_recorded():
    with pytest.raises(ValueError, match=r"malloc must be one of \['retain', 'default'\]"):
        set_malloc_policy('jemalloc')
    assert set_malloc_policy('default').startswith('as started')
    if sys.platform.startswith('linux'):
        assert set_malloc_policy('retain').startswith('glibc retain')


def test_every_peer_builds_and_pairs_with_ours():
    assert {peer for _, peer in OURS.values()} <= set(PEERS)
    x = torch.randn(1, 3, 64, 64)
    for name in PEERS:
        with torch.inference_mode():
            assert build_peer(name)(x, mode='tensor').shape == (1, 1000), name


def test_benchmarked_forms_compute_the_same_function():
    forms = build_ours(OURS['CondenseNetV2-A'][0], ROOT)
    x = torch.randn(1, 3, 96, 96)
    with torch.inference_mode():
        a, b = (forms[k](x, mode='tensor') for k in ('training', 'deploy'))
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_python_loop_form_only_for_models_with_dense_stages():
    result = run_benchmark(ROOT, threads=[1], batches=[1], size=64,
                           forms=['fused', 'fused-python'],
                           models=['CondenseNetV2-A', 'SFR-ShuffleNetV2-0.5x'], detectors=False,
                           onnx=(), budget_s=0.0, malloc='default', log=lambda _: None)
    ours = {(r.model, r.form) for r in result['rows'] if r.peer}
    assert ours == {('CondenseNetV2-A', 'fused'), ('CondenseNetV2-A', 'fused-python'),
                    ('SFR-ShuffleNetV2-0.5x', 'fused')}  # the backend changes nothing there
    forms = build_detector('configs/retinanet_cnv2_a.py', ROOT)
    assert sorted(forms) == ['deploy', 'fused', 'fused-python']
    built = os.environ.get('MMCNV2_WITH_OPS') != '0'  # else 'auto' is the Python loop
    for form, backend in (('fused', 'cpp' if built else 'python'), ('fused-python', 'python')):
        assert {m.backend for m in forms[form].modules()
                if isinstance(m, FusedSFRDenseStage)} == {backend}
    assert sorted(build_detector('configs/retinanet_shufflenetv2_1.5x.py', ROOT)) == ['as-is']


def test_tiny_run_pairs_rows_with_their_peer(tmp_path):
    log = []
    threads = torch.get_num_threads()
    result = run_benchmark(ROOT, threads=[1], batches=[1, 2], size=64, forms=['deploy', 'fused'],
                           models=['SFR-ShuffleNetV2-0.5x'], detectors=False, onnx=(),
                           budget_s=0.0, malloc='default', log=log.append)
    # progress: k of N in every phase (one build of ours and one of its peer, two rounds)
    steps = [line.split(']')[0] + ']' for line in log if line.startswith('[')]
    assert steps == ['[build 1/2]', '[build 2/2]', '[pytorch 1/2]', '[pytorch 2/2]']
    result['rows'] = [r for r in result['rows'] if r.batch == 1]
    # the process keeps its thread count (a leaked 1 made later tests' floats differ from
    # subprocesses' and broke bit-exact resume comparisons)
    assert torch.get_num_threads() == threads
    got = {(r.model, r.form) for r in result['rows']}
    assert got == {('SFR-ShuffleNetV2-0.5x', 'deploy'), ('SFR-ShuffleNetV2-0.5x', 'fused'),
                   ('ShuffleNetV2-0.5x', 'as-is'), ('ShuffleNetV2-0.5x', 'channels-last')}
    assert all(r.timing.median > 0 and r.timing.runs >= 5 for r in result['rows'])
    lines = format_table(result, markdown=True).splitlines()
    assert len(lines) == 2 + 4
    ours = [line for line in lines if line.startswith('| SFR-ShuffleNetV2-0.5x')]
    peer = next(r for r in result['rows'] if r.form == 'as-is').timing.median
    for line, row in zip(ours, [r for r in result['rows'] if r.peer]):
        assert line.rstrip(' |').endswith(f'{row.timing.median / peer:.2f}')
    assert result['machine']['torch'] == torch.__version__
    assert result['settings']['malloc'].startswith('as started')
    # summary: one line per model and form, the ratio in brackets for ours
    summary = format_summary(result, markdown=True).splitlines()
    assert summary[0] == '| model | form | input | PyTorch 1 thr b1 |' and len(summary) == 2 + 4
    fused = next(r for r in result['rows'] if r.form == 'fused').timing.median
    assert f'| {fused:.1f} ({fused / peer:.2f}x) |' in summary[3]
    # a saved run prints the same tables again
    to_json(result, str(tmp_path / 'run.json'))
    again = from_json(str(tmp_path / 'run.json'))
    assert format_summary(again) == format_summary(result)
    assert format_table(again) == format_table(result)


def test_bad_arguments_name_the_allowed_values():
    with pytest.raises(ValueError, match='models must be among.*CondenseNetV2-A'):
        run_benchmark(ROOT, models=['CondenseNetV2-D'], detectors=False, onnx=())
    with pytest.raises(ValueError, match="malloc must be one of"):
        run_benchmark(ROOT, models=['CondenseNetV2-A'], malloc='tcmalloc', detectors=False,
                      onnx=())
    with pytest.raises(ValueError, match="forms must be among.*'fused'.*'fused-python'"):
        run_benchmark(ROOT, models=['CondenseNetV2-A'], forms=['compiled'], detectors=False,
                      onnx=())


def test_onnxruntime_timing_export_matches_pytorch(tmp_path):
    pytest.importorskip('onnxruntime')
    diff = export_for_timing(build_peer('ShuffleNetV2-0.5x'), torch.randn(1, 3, 64, 64),
                             str(tmp_path / 'peer.onnx'), legacy=True)
    assert diff <= 1e-4


def test_onnx_files_timed_in_both_runtimes_fp32_and_int8(tmp_path):
    """A peer exported for timing, its int8 copy (QDQ nodes), each timed in onnxruntime and
    OpenVINO: one (runtime, threads, timing) per setting."""
    pytest.importorskip('openvino')
    import onnx
    path = str(tmp_path / 'peer.onnx')
    export_for_timing(build_peer('ShuffleNetV2-0.5x'), torch.randn(1, 3, 64, 64), path,
                      legacy=True)
    int8 = quantize_for_timing(path)
    assert int8 == str(tmp_path / 'peer_int8.onnx')
    assert 'QuantizeLinear' in {n.op_type for n in onnx.load(int8).graph.node}
    feeds = random_calibration(path, 1)[0]
    assert feeds['inputs'].shape == (1, 3, 64, 64)
    timed = dict(warmup=1, min_runs=2, max_runs=2, budget_s=0.0)
    for file in (path, int8):
        got = time_onnx_file(file, feeds, ['onnxruntime', 'openvino'], [1, 2], timed)
        assert [(r, t) for r, t, _ in got] == [('onnxruntime', 1), ('onnxruntime', 2),
                                              ('openvino', 1), ('openvino', 2)]
        assert all(timing.runs == 2 and timing.median > 0 for _, _, timing in got)


def test_summary_pairs_int8_openvino_and_whole_detector_rows_with_their_peer():
    """int8 rows of ours are compared with the peer's int8 rows, whole detectors with the
    peer's whole detector, each runtime with the same runtime."""
    def row(model, form, runtime, ms, peer=None, size=(224, 224)):
        return Row(model, form, runtime, 1, 1, size, Timing(ms, ms, ms, 5), peer)
    rows = [row('CondenseNetV2-C', 'deploy', 'onnxruntime', 30.0, 'ShuffleNetV2-1.5x'),
            row('CondenseNetV2-C', 'deploy-int8', 'onnxruntime', 12.0, 'ShuffleNetV2-1.5x'),
            row('CondenseNetV2-C', 'deploy', 'openvino', 20.0, 'ShuffleNetV2-1.5x'),
            row('ShuffleNetV2-1.5x', 'as-is', 'onnxruntime', 10.0),
            row('ShuffleNetV2-1.5x', 'as-is-int8', 'onnxruntime', 8.0),
            row('ShuffleNetV2-1.5x', 'as-is', 'openvino', 5.0),
            row('RetinaNet-CondenseNetV2-C', 'whole', 'onnxruntime', 900.0,
                'RetinaNet-ShuffleNetV2-1.5x', (416, 416)),
            row('RetinaNet-ShuffleNetV2-1.5x', 'whole', 'onnxruntime', 600.0, size=(416, 416))]
    lines = [[c.strip() for c in line.strip('|').split('|')]
             for line in format_summary(dict(rows=rows), markdown=True).splitlines()]
    assert lines[0] == ['model', 'form', 'input', 'ORT 1 thr b1', 'OV 1 thr b1']
    cells = {tuple(line[:3]): line[3:] for line in lines[2:]}
    assert cells['CondenseNetV2-C', 'deploy', '224x224'] == ['30.0 (3.00x)', '20.0 (4.00x)']
    assert cells['CondenseNetV2-C', 'deploy-int8', '224x224'] == ['12.0 (1.50x)', '']
    assert cells['RetinaNet-CondenseNetV2-C', 'whole', '416x416'] == ['900.0 (1.50x)', '']


def test_whole_detector_for_timing_exports_a_loadable_checkpoint(tmp_path, monkeypatch):
    """The detector configs build their deploy form: the checkpoint handed to the whole
    export loads strictly into it (the export itself is mocked: minutes on 2 cores)."""
    import mmcnv2_tools.benchmark as benchmark
    from mmcnv2.apis.export import load_deploy_model
    from mmcnv2_tools.benchmark import whole_detector_for_timing
    calls = []

    def fake_export(config, ckpt, out, shape):
        calls.append((load_deploy_model(config, ckpt)[0], out, shape))
    monkeypatch.setattr(benchmark, 'export_detector_onnx', fake_export)
    out = whole_detector_for_timing('configs/retinanet_cnv2_a.py', ROOT, str(tmp_path), 'det',
                                    (416, 416))
    assert out == str(tmp_path / 'det_416x416.onnx') and calls[0][1:] == (out, (416, 416))
    assert type(calls[0][0]).__name__ == 'RetinaNet'
    # the peer (mmdet's ShuffleNetV2, no LGC/SFR layers) goes through the same export: it
    # had raised 'has no LGC/SFR layers to convert' after a whole benchmark's first half
    config = next(iter(benchmark.DETECTOR_PEERS.values()))
    whole_detector_for_timing(config, ROOT, str(tmp_path), 'peer', (416, 416))
    assert type(calls[1][0].backbone).__name__ == 'ShuffleNetV2'


def test_bad_onnx_options_are_refused():
    with pytest.raises(ValueError, match='runtime must be among'):
        run_benchmark(ROOT, models=['CondenseNetV2-A'], detectors=False, onnx=(),
                      runtimes=['tensorrt'])
    with pytest.raises(ValueError, match=r'whole_detectors must be \(H, W\) sizes'):
        run_benchmark(ROOT, models=['CondenseNetV2-A'], detectors=False, onnx=(),
                      whole_detectors=[(800, )])
    assert tool('benchmark.py', '--whole-detectors', '800').startswith(
        '--whole-detectors takes pairs H W of ints >= 32, got [800]')


def test_cli_writes_json_and_markdown(tmp_path):
    out = tmp_path / 'bench.json'
    proc = subprocess.run(
        [sys.executable, 'tools/benchmark.py', '--models', 'CondenseNetV2-A', '--threads', '1',
         '--batches', '1', '--forms', 'deploy', '--no-detectors', '--no-onnx', '--budget', '0',
         '--markdown', '--out', str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '| CondenseNetV2-A | deploy | pytorch | 1 | 1 | 224x224 |' in proc.stdout
    data = json.loads(out.read_text())
    assert data['settings']['malloc'].startswith('glibc retain')
    assert {r['model'] for r in data['rows']} == {'CondenseNetV2-A', 'ShuffleNetV2-0.5x'}
    assert data['machine']['cores'] >= 1
    bad = subprocess.run([sys.executable, 'tools/benchmark.py', '--threads', '0'], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and '--threads must be positive' in bad.stderr
