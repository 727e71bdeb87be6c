"""The version's one source, the licence and the citation files."""
import os
import os.path as osp
import re
import subprocess
import sys

import yaml

import mmcnv2

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# the paper's title and authors, in its order
TITLE = 'CondenseNet V2: Sparse Feature Reactivation for Deep Networks'
AUTHORS = ['Le Yang', 'Haojun Jiang', 'Ruojin Cai', 'Yulin Wang', 'Shiji Song', 'Gao Huang',
           'Qi Tian']


def _read(path):
    with open(osp.join(ROOT, path)) as f:
        return f.read()


def test_version_is_written_once():
    from mmcnv2 import version
    assert mmcnv2.__version__ == version.__version__
    assert re.fullmatch(r'\d+\.\d+\.\d+(rc\d+)?', mmcnv2.__version__)
    # setup.py reads it from mmcnv2/version.py without importing the package
    proc = subprocess.run([sys.executable, 'setup.py', '--version'], cwd=ROOT,
                          env=dict(os.environ, MMCNV2_WITH_OPS='0'), capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == mmcnv2.__version__
    for path in ('setup.py', 'mmcnv2/__init__.py', 'CITATION.cff'):
        assert mmcnv2.__version__ not in _read(path), path


def test_licence_is_apache_2():
    text = _read('LICENSE')
    assert 'Apache License' in text and 'Version 2.0, January 2004' in text
    assert 'END OF TERMS AND CONDITIONS' in text
    assert yaml.safe_load(_read('CITATION.cff'))['license'] == 'Apache-2.0'


def test_citation_file_and_readme_cite_the_paper():
    cff = yaml.safe_load(_read('CITATION.cff'))
    assert cff['cff-version'] == '1.2.0' and cff['type'] == 'software'
    paper = cff['preferred-citation']
    assert paper['title'] == TITLE and paper['year'] == 2021
    assert [f"{a['given-names']} {a['family-names']}" for a in paper['authors']] == AUTHORS
    assert 'Computer Vision and Pattern Recognition' in paper['collection-title']

    bibtex = re.search(r'```bibtex\n(.*?)```', _read('README.md'), re.S).group(1)
    fields = dict(re.findall(r'(\w+)\s*=\s*\{(.*?)\},?\n(?=\s*\w+\s*=|\})', bibtex, re.S))
    assert fields['title'] == TITLE and fields['year'] == '2021'
    names = [' '.join(reversed(n.split(', '))) for n in re.split(r'\s+and\s+', fields['author'])]
    assert names == AUTHORS
