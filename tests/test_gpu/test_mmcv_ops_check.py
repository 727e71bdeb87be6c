"""A CPU-only (or wrong-architecture) mmcv on a GPU is an error before the first iteration,
naming the rebuild command. Runs everywhere: the GPU and mmcv's probe are simulated."""
import mmcv.ops
import pytest
from mmengine.config import Config

from mmcnv2.apis.runner import load_config
from mmcnv2.engine import MMCVOpsCheckHook
from mmcnv2.utils import MMCVOpsError, check_mmcv_ops, mmcv_ops_problem
from mmcnv2.utils import mmcv_ops as probe
from tests.runner_utils import RecordHook, tiny_cfg
from tests.test_gpu.utils import ROOT

H200 = 'NVIDIA H200, compute capability 9.0'


@pytest.fixture
def gpu(monkeypatch):
    """A simulated GPU for the probe (no CUDA call is made)."""
    monkeypatch.setattr(probe, '_gpu_name', lambda device: H200)


def test_cpu_needs_no_cuda_ops():
    assert mmcv_ops_problem('cpu') is None
    check_mmcv_ops('cpu')


def test_cpu_only_mmcv_on_a_gpu_names_the_rebuild(gpu, monkeypatch):
    monkeypatch.setattr(mmcv.ops, 'get_compiling_cuda_version', lambda: 'not available')
    with pytest.raises(MMCVOpsError) as info:
        check_mmcv_ops('cuda')
    message = str(info.value)
    assert 'built with CPU ops only' in message and H200 in message
    assert 'MMCNV2_DEVICE=cuda make env' in message and 'tools/build_mmcv.sh' in message


def test_mmcv_without_ops_is_named(gpu, monkeypatch):
    monkeypatch.delattr(mmcv.ops, 'get_compiling_cuda_version')
    assert 'has no compiled ops' in mmcv_ops_problem('cuda:0')


def test_cuda_ops_for_another_architecture(gpu, monkeypatch):
    def no_kernel(device):
        raise RuntimeError('CUDA error: no kernel image is available for execution on the '
                           'device\nCUDA kernel errors might be asynchronously reported')

    monkeypatch.setattr(mmcv.ops, 'get_compiling_cuda_version', lambda: '13.0')
    monkeypatch.setattr(probe, '_run_nms', no_kernel)
    message = mmcv_ops_problem('cuda')
    assert 'CUDA 13.0 ops that do not run on this GPU' in message and H200 in message
    assert 'no kernel image' in message and 'TORCH_CUDA_ARCH_LIST' in message


def test_working_cuda_ops_pass(gpu, monkeypatch):
    monkeypatch.setattr(mmcv.ops, 'get_compiling_cuda_version', lambda: '13.0')
    monkeypatch.setattr(probe, '_run_nms', lambda device: None)
    assert mmcv_ops_problem('cuda') is None


def test_hook_stops_the_run_before_the_first_iteration(tmp_path, monkeypatch):
    from mmengine.runner import Runner
    monkeypatch.setattr(probe, 'mmcv_ops_problem',
                        lambda device: f'simulated: no CUDA ops for {device}')
    cfg = tiny_cfg(tmp_path, iters=4, hooks=[dict(type='MMCVOpsCheckHook')])
    runner = Runner.from_cfg(cfg)
    recorder = RecordHook()
    runner.register_hook(recorder)
    with pytest.raises(MMCVOpsError, match='simulated: no CUDA ops for cpu'):
        runner.train()
    assert recorder.stages == []  # no iteration ran


def test_detection_configs_check_and_classification_configs_do_not():
    # mmdet's own tools read the hook from our configs
    cfg = Config.fromfile(f'{ROOT}/configs/retinanet_cnv2_c.py')
    assert [h['type'] for h in cfg.custom_hooks] == ['MMCVOpsCheckHook']
    # ours add it where a config lacks it, once
    cfg = load_config(f'{ROOT}/configs/demo/retinanet_cnv2_trees.py')
    assert sum(h['type'] in ('MMCVOpsCheckHook', MMCVOpsCheckHook)
               for h in cfg.custom_hooks) == 1
    cfg = load_config(f'{ROOT}/configs/faster_rcnn_cnv2_c.py')
    assert sum(h['type'] == 'MMCVOpsCheckHook' for h in cfg.custom_hooks) == 1
    cfg = load_config(f'{ROOT}/configs/imagenet/cnv2_a.py')
    assert not any(h['type'] == 'MMCVOpsCheckHook' for h in cfg.get('custom_hooks', []))
