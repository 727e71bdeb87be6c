"""The import graph of mmcnv2 points one way: no cycle, and no import hidden in a function
to dodge one.

A cycle between modules works or breaks depending on which module a program imports
first; function-local imports that hide one make the order of imports matter in ways
nobody sees. So: every module imports in a fresh interpreter in alphabetical and in
reverse order, the module-level imports form no cycle, and no function imports an mmcnv2
module (optional third-party dependencies, e.g. onnx, onnxruntime, matplotlib, mmdet,
are imported where they are used, and that is fine).
"""
import ast
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, Iterator, List, Optional, Set, Tuple

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: Packages whose modules are checked: the installed package, and the tools' own package.
PACKAGES = {'mmcnv2': osp.join(ROOT, 'mmcnv2'),
            'mmcnv2_tools': osp.join(ROOT, 'tools', 'mmcnv2_tools')}
#: ``(file, imported module) -> why`` of function-local mmcnv2 imports that are needed.
JUSTIFIED_LOCAL_IMPORTS: Dict[Tuple[str, str], str] = {}


def package_modules(package: str) -> Dict[str, str]:
    """``{module name: file}`` of every Python module under ``package``."""
    top = PACKAGES[package]
    modules = {}
    for folder, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d.isidentifier())  # not .mim, __pycache__
        rel = osp.relpath(folder, top)
        parts = [package] + ([] if rel == '.' else rel.split(os.sep))
        for name in files:
            if name.endswith('.py'):
                stem = name[:-3]
                modules['.'.join(parts if stem == '__init__' else parts + [stem])] = \
                    osp.join(folder, name)
    return modules


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name of the module a ``from ... import`` names."""
    if not node.level:
        return node.module
    base = module.split('.')
    base = base[:len(base) - node.level + (1 if is_package else 0)]
    return '.'.join(base + ([node.module] if node.module else []))


def imported_modules(module: str, path: str, known: Set[str],
                     local: Optional[bool]) -> Iterator[Tuple[str, int]]:
    """``(imported module, line)`` of the imports of ``known`` modules in ``path``:
    module-level ones (``local=False``), those inside functions (``local=True``) or all."""
    tree = ast.parse(open(path).read(), path)
    is_package = path.endswith('__init__.py')

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                       ast.Lambda))
            if isinstance(child, (ast.Import, ast.ImportFrom)) and (local is None
                                                                   or local == in_function):
                if isinstance(child, ast.Import):
                    targets = [a.name for a in child.names]
                else:
                    target = _resolve(module, is_package, child)
                    # 'from pkg import submodule' imports the submodule
                    targets = [f'{target}.{a.name}' if f'{target}.{a.name}' in known else target
                               for a in child.names]
                for target in dict.fromkeys(targets):
                    if target in known:
                        yield target, child.lineno
            yield from visit(child, inside)

    yield from visit(tree, False)


def all_modules() -> Dict[str, str]:
    modules = {}
    for package in PACKAGES:
        modules.update(package_modules(package))
    return modules


def test_every_module_is_found():
    modules = all_modules()
    assert 'mmcnv2.models.forms' in modules and 'mmcnv2_tools.benchmark' in modules
    assert not any('.mim' in name for name in modules)


@pytest.mark.parametrize('order', ['alphabetical', 'reverse'])
def test_every_module_imports_in_a_fresh_interpreter(order):
    names = sorted(package_modules('mmcnv2'), reverse=order == 'reverse')
    names += sorted(package_modules('mmcnv2_tools'), reverse=order == 'reverse')
    script = ('import importlib, sys\n'
              f'for name in {names!r}:\n'
              '    importlib.import_module(name)\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT, osp.join(ROOT, 'tools'), os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run([sys.executable, '-c', script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """One cycle through each strongly connected part of ``graph`` that has one."""
    state: Dict[str, int] = {}
    stack: List[str] = []
    found = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_module_level_imports_form_no_cycle():
    modules = all_modules()
    graph = {name: {target for target, _ in imported_modules(name, path, set(modules), False)
                    if target != name}
             for name, path in modules.items()}
    assert _cycles(graph) == []


def test_no_function_imports_an_mmcnv2_module():
    """Imports of mmcnv2 modules sit at the top of the file: the graph is then what the
    module-level check sees."""
    modules = all_modules()
    found = []
    for name, path in sorted(modules.items()):
        rel = osp.relpath(path, ROOT)
        for target, line in imported_modules(name, path, set(modules), True):
            if (rel, target) not in JUSTIFIED_LOCAL_IMPORTS:
                found.append(f'{rel}:{line}: {target}')
    assert found == []


def test_the_checks_see_cycles_and_local_imports(tmp_path, monkeypatch):
    """The checks above on a made-up package with both faults."""
    package = tmp_path / 'pkg'
    package.mkdir()
    (package / '__init__.py').write_text('')
    (package / 'a.py').write_text('from .b import f\n')
    (package / 'b.py').write_text('from . import a\n\n\ndef f():\n    from .c import g\n')
    (package / 'c.py').write_text('import os\n')
    monkeypatch.setitem(PACKAGES, 'pkg', str(package))
    modules = package_modules('pkg')
    assert sorted(modules) == ['pkg', 'pkg.a', 'pkg.b', 'pkg.c']
    graph = {n: {t for t, _ in imported_modules(n, p, set(modules), False)}
             for n, p in modules.items()}
    assert _cycles(graph) == [['pkg.a', 'pkg.b', 'pkg.a']]
    assert list(imported_modules('pkg.b', modules['pkg.b'], set(modules), True)) == [
        ('pkg.c', 5)]
