"""Sparsification curves drawn from the scalars.json of a real (tiny) training run."""
import glob
import json
import os.path as osp
import shutil
import subprocess
import sys

import pytest

from mmcnv2.analysis.curves import (find_scalars, load_sparsification_curves,
                                    plot_sparsification_curves)
from tests.runner_utils import TINY_ARCH, run, tiny_cfg

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    """4 epochs of 4 iterations (32 images, batch 8), validation after epochs 2 and 4."""
    work_dir = tmp_path_factory.mktemp('curves') / 'run'
    val = dict(batch_size=16, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
               dataset=dict(type='SklearnDigits', split='test', size=8, indices=32,
                            pipeline=[dict(type='PackInputs')]))
    cfg = tiny_cfg(work_dir, epochs=4, images=32, batch=8, val_dataloader=val, val_cfg=dict(),
                   val_evaluator=dict(type='Accuracy', topk=(1, )))
    cfg.train_cfg.val_interval = 2
    run(cfg, record=False)
    return work_dir


def test_curves_follow_the_schedule(tiny_run, tmp_path):
    out = tmp_path / 'figs' / 'curves.png'
    curves = plot_sparsification_curves(str(tiny_run), str(out))
    assert curves['file'].startswith(str(tiny_run)) and curves['file'].endswith(
        osp.join('vis_data', 'scalars.json'))
    assert curves['iter'] == list(range(1, 17))  # LoggerHook interval 1
    lgc, sfr = curves['density_lgc'], curves['density_sfr']
    # stage after iteration i of 16 with sparsification over the first half: none after the
    # first iteration, all stages from iteration 8 on; each group keeps 1/C (1/S) of its inputs
    assert lgc[0] == 1.0 and sfr[0] == 1.0
    assert lgc[7:] == [pytest.approx(1 / TINY_ARCH['condense_factor'])] * 9
    assert sfr[7:] == [pytest.approx(1 / TINY_ARCH['sparse_factor'])] * 9
    assert all(a >= b for a, b in zip(lgc, lgc[1:])) and all(a >= b for a, b in zip(sfr, sfr[1:]))
    flops = curves['live_mflops']
    assert flops[-1] < flops[0] and all(a >= b for a, b in zip(flops, flops[1:]))
    assert curves['metric'] == 'accuracy/top1'
    assert curves['val_iter'] == [8, 16]  # ends of epochs 2 and 4
    assert len(curves['val']) == 2 and all(0 <= v <= 100 for v in curves['val'])

    import matplotlib.image
    image = matplotlib.image.imread(str(out))
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 300


def test_cli_draws_and_reports(tiny_run, tmp_path):
    out = tmp_path / 'c.png'
    proc = subprocess.run([sys.executable, 'tools/plot_curves.py', str(tiny_run), '--out',
                           str(out)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '16 training records, 2 validations (accuracy/top1)' in proc.stdout
    assert 'density_lgc 0.25' in proc.stdout and out.is_file()


def test_a_later_evaluation_run_is_passed_over(tiny_run, tmp_path):
    work_dir = tmp_path / 'run'
    shutil.copytree(tiny_run, work_dir)
    trained, = glob.glob(str(work_dir / '*' / 'vis_data' / 'scalars.json'))
    # what a Runner that only tests writes into the same work dir, later
    later = work_dir / '29991231_235959' / 'vis_data'
    later.mkdir(parents=True)
    (later / 'scalars.json').write_text(json.dumps({'accuracy/top1': 50.0, 'step': 0}) + '\n')
    assert find_scalars(str(work_dir)) == trained
    assert load_sparsification_curves(str(work_dir))['iter'] == list(range(1, 17))
    only_eval = tmp_path / 'eval_only'
    shutil.copytree(later.parent, only_eval / later.parent.name)
    with pytest.raises(ValueError, match='no run under .* logged density_lgc/density_sfr/'
                       r'live_mflops: was it trained with SparsifyHook\? \(read 1 '):
        find_scalars(str(only_eval))


def test_bad_logs_are_errors(tiny_run, tmp_path):
    with pytest.raises(FileNotFoundError, match='no <timestamp>/vis_data/scalars.json under'):
        load_sparsification_curves(str(tmp_path))
    with pytest.raises(ValueError, match="metric 'coco/bbox_mAP' is not in the validation "
                       r"records.*\['accuracy/top1'\]"):
        load_sparsification_curves(str(tiny_run), metric='coco/bbox_mAP')
    plain = tmp_path / 'scalars.json'
    plain.write_text('\n'.join(json.dumps(r) for r in (
        dict(lr=0.1, loss=2.3, epoch=1, iter=1, step=1),
        dict(lr=0.1, loss=2.2, epoch=1, iter=2, step=2))))
    with pytest.raises(ValueError, match='was the run trained with SparsifyHook'):
        load_sparsification_curves(str(plain))


def test_validation_by_iteration_and_by_epoch(tmp_path):
    records = [dict(density_lgc=1.0, epoch=1 + (i - 1) // 5, iter=i, step=i) for i in
               range(2, 21, 2)]  # logged every 2 of 5 iterations per epoch
    records.insert(5, {'accuracy/top1': 50.0, 'step': 2})
    file = tmp_path / 'scalars.json'
    file.write_text('\n'.join(json.dumps(r) for r in records))
    # epoch 2 ends at iteration 10; 10 is logged, so the epoch length is known exactly
    assert load_sparsification_curves(str(file))['val_iter'] == [10]
    assert load_sparsification_curves(str(file), log_metric_by_epoch=False)['val_iter'] == [2]


def test_tensorboard_receives_the_hook_scalars(tmp_path):
    pytest.importorskip('tensorboard', reason='optional: requirements/optional.txt')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # what README "Logging" adds to a config
    visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend'),
                                                       dict(type='TensorboardVisBackend')])
    run(tiny_cfg(tmp_path / 'run', iters=8, visualizer=visualizer), record=False)
    events, = glob.glob(str(tmp_path / 'run' / '*' / 'vis_data' / 'events.out.tfevents.*'))
    accumulator = EventAccumulator(osp.dirname(events))
    accumulator.Reload()
    assert {'density_lgc', 'density_sfr', 'live_mflops', 'loss', 'lr'} <= set(
        accumulator.Tags()['scalars'])
    lgc = accumulator.Scalars('density_lgc')
    assert [e.step for e in lgc] == list(range(1, 9))
    assert lgc[0].value == 1.0  # no stage dropped after 1 of 8 iterations
    assert lgc[-1].value == pytest.approx(1 / TINY_ARCH['condense_factor'])
