"""Two-process gloo DDP on CPU: every rank holds identical masks after every iteration."""
import os
import socket

import torch
import torch.multiprocessing as mp

from tests.runner_utils import RecordHook, final_state, tiny_cfg


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank, world_size, port, work_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    import mmcnv2  # noqa: F401
    from mmcnv2.apis.runner import build_runner, use_cpu_distributed
    cfg = tiny_cfg(work_dir, iters=8, launcher='pytorch', checkpoint_interval=10**6)
    use_cpu_distributed(cfg)
    runner = build_runner(cfg)
    recorder = RecordHook()
    runner.register_hook(recorder)
    runner.train()
    torch.save(dict(masks=recorder.masks, stages=recorder.stages, state=final_state(runner)),
               os.path.join(work_dir, f'rank{rank}.pt'))
    torch.distributed.destroy_process_group()


def test_two_rank_gloo_ddp_masks_agree_every_iteration(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / 'rank0.pt', weights_only=True)
    r1 = torch.load(tmp_path / 'rank1.pt', weights_only=True)
    assert len(r0['masks']) == len(r1['masks']) == 8
    changed = 0
    for i, (a, b) in enumerate(zip(r0['masks'], r1['masks'])):
        assert set(a) == set(b)
        for k in a:
            assert torch.equal(a[k], b[k]), (i, k)
        if i and any(not torch.equal(a[k], r0['masks'][i - 1][k]) for k in a):
            changed += 1
    assert changed >= 2, 'the masks must actually change during the run'
    assert r0['stages'] == r1['stages']
    # DDP keeps the weights in sync too (BN running stats are per rank by design)
    for k, v in r0['state'].items():
        if 'running' not in k and 'num_batches' not in k:
            assert torch.equal(v, r1['state'][k]), k
