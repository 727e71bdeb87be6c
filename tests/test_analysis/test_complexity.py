import pytest
from mmengine.config import Config

from mmcnv2.analysis import paper_complexity
from mmcnv2.analysis.complexity import config_complexity
from mmcnv2.models import CondenseNetV2

# (paper Table 2/5 figure, official measure_model figure) in millions;
# the official code was run to get the second column (shared/notes/official_code.md).
PAPER = {'a': ((46, 2.0), (45.87, 2.038)), 'b': ((146, 3.6), (146.47, 3.593)),
         'c': ((309, 6.1), (309.74, 6.178))}


@pytest.mark.parametrize('arch', ['a', 'b', 'c'])
def test_flops_and_params_match_paper_and_release(arch):
    cfg = Config.fromfile(f'configs/imagenet/cnv2_{arch}.py')
    r = config_complexity(cfg, with_mmengine=False)
    (paper_flops, paper_params), (rel_flops, rel_params) = PAPER[arch]
    flops, params = r['paper_flops'] / 1e6, r['paper_params'] / 1e6
    assert flops == pytest.approx(paper_flops, rel=0.01)
    assert flops == pytest.approx(rel_flops, abs=0.01)
    # params equal the release's count; the paper prints them to one decimal
    # (C: 6.18M printed as 6.1M, see README)
    assert params == pytest.approx(rel_params, abs=0.001)
    assert params == pytest.approx(paper_params, rel=0.02)


def test_training_and_deploy_forms_count_the_same():
    a = paper_complexity(CondenseNetV2('a', out_indices=(4, )))
    b = paper_complexity(CondenseNetV2('a', out_indices=(4, ), deploy=True))
    assert a == pytest.approx(b)
