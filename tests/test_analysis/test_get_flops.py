"""tools/get_flops.py: what it counts, at which size, and its errors."""
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def get_flops(*args, cwd=None):
    return subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'get_flops.py'), *args],
                          cwd=cwd or ROOT, capture_output=True, text=True, timeout=600)


def test_detector_prints_whole_detector_at_test_size_and_backbone_at_224(tmp_path):
    """Run from another directory, with the config given by an absolute path. The test
    pipeline's Resize scale (1333x800 in the config; made small here to keep the test
    fast) sets the input, padded as the data preprocessor pads."""
    proc = get_flops(osp.join(ROOT, 'configs/retinanet_cnv2_a.py'), '--cfg-options',
                     'test_dataloader.dataset.pipeline.1.scale=(333,200)', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert ("Input: 3x224x352, the test pipeline's Resize scale 333x200 (keep_ratio: real images "
            'are at most this size), padded to a multiple of 32 as the data preprocessor does'
            in out)
    assert "whole detector, paper's count" in out and 'whole detector, mmengine count' in out
    assert "backbone alone at 224x224, paper's count: FLOPs    44.26M" in out
    assert "Table 7 lists backbone FLOPs at 224x224" in out


@pytest.mark.parametrize('args,message', [
    (['configs/no_such_config.py'], 'error: CONFIG configs/no_such_config.py is not a file'),
    (['configs/imagenet/cnv2_a.py', '--shape', '0', '0'],
     'error: --shape H W must be two positive ints, got 0 0'),
    (['configs/imagenet/cnv2_a.py', '--shape', '224', '-1'],
     'error: --shape H W must be two positive ints, got 224 -1'),
    ([], 'error: give a CONFIG, or --paper'),
    (['configs/imagenet/cnv2_a.py', '--paper'], 'error: give either a CONFIG or --paper'),
])
def test_bad_arguments_are_errors_without_traceback(args, message):
    proc = get_flops(*args)
    assert proc.returncode != 0
    assert proc.stderr.strip() == message or proc.stderr.startswith(message), proc.stderr
    assert 'Traceback' not in proc.stderr


def test_paper_table_reports_progress(monkeypatch, capsys):
    """--paper counts every model of the paper's tables (minutes): it shows k of N on
    stderr, the table on stdout (the counting is stubbed here: only the reporting is
    tested; the counts are tested elsewhere)."""
    import importlib.util

    from mmcnv2_tools import paper_tables

    entries = paper_tables.PAPER_ENTRIES[:3]
    monkeypatch.setattr(paper_tables, 'PAPER_ENTRIES', entries)
    monkeypatch.setattr(paper_tables, 'config_complexity', lambda cfg, shape, with_mmengine: dict(
        paper_flops=1e6 * shape[0], paper_params=1e6, mmengine_flops=2e6, mmengine_params=1e6))
    calls = []
    rows = paper_tables.paper_table(ROOT, progress=lambda k, n, e: calls.append((k, n, e.name)))
    assert calls == [(k, 3, e.name) for k, e in enumerate(entries, start=1)]
    assert [(r['name'], r['flops']) for r in rows] == [(e.name, 224) for e in entries]
    spec = importlib.util.spec_from_file_location('get_flops', osp.join(ROOT, 'tools',
                                                                       'get_flops.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.print_paper_table()
    out, err = capsys.readouterr()
    assert '1/3' in err and '3/3' in err  # mmengine's progress bar, on stderr
    assert [line.split()[0] for line in out.splitlines()[1:4]] == ['CondenseNetV2-A',
                                                                    'CondenseNetV2-B',
                                                                    'CondenseNetV2-C']
