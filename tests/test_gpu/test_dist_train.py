"""tools/dist_train.sh: a one-process distributed run with SparsifyHook writes its
checkpoint: NCCL and SyncBN on a GPU; gloo and BN on the CPU (SyncBN refuses CPU tensors
in a process group)."""
import os
import os.path as osp
import socket
import subprocess
import sys

import torch

from tests.runner_utils import tiny_cfg
from tests.test_gpu.utils import ROOT


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_one_process_dist_train(runner_device, tmp_path):
    backend = 'nccl' if runner_device.type == 'cuda' else 'gloo'
    cfg = tiny_cfg(tmp_path / 'work', iters=6, checkpoint_interval=6,
                   env_cfg=dict(dist_cfg=dict(backend=backend)))
    norm = 'SyncBN' if backend == 'nccl' else 'BN'
    cfg.model.backbone.norm_cfg = dict(type=norm, requires_grad=True)
    config = str(tmp_path / 'tiny_dist.py')
    cfg.dump(config)
    env = dict(os.environ, PORT=str(_free_port()), PYTHON=sys.executable)
    proc = subprocess.run(['bash', 'tools/dist_train.sh', config, '1', '--work-dir',
                           str(tmp_path / 'work')], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ckpt = torch.load(tmp_path / 'work' / 'iter_6.pth', map_location='cpu', weights_only=True)
    masks = {k: v for k, v in ckpt['state_dict'].items() if k.endswith('.mask')}
    assert masks and all(v.float().mean() < 1 for v in masks.values())  # pruned by the hook
    dumped = [f for f in os.listdir(tmp_path / 'work') if f.endswith('.py')]
    from mmengine.config import Config
    ran = Config.fromfile(osp.join(tmp_path / 'work', dumped[0]))
    assert ran.launcher == 'pytorch' and ran.env_cfg.dist_cfg.backend == backend
    assert ran.model.backbone.norm_cfg.type == norm
