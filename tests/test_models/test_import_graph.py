"""The models and their compiled operators depend on nothing above them: no module of
mmcnv2.models or mmcnv2.ops imports mmcnv2's checkpoint, engine, apis or analysis packages
(backbone initialisation lives with the models; mmcnv2.checkpoint imports mmcnv2.models, never
the reverse), and none imports mmcnv2 modules inside a function, where an import cycle could
hide."""
import ast
import os.path as osp
import pkgutil

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PACKAGE = osp.join(ROOT, 'mmcnv2')
LOWER = ('models', 'ops')
HIGHER = ('mmcnv2.checkpoint', 'mmcnv2.engine', 'mmcnv2.apis', 'mmcnv2.analysis')


def _modules(packages):
    for package in packages:
        path = osp.join(PACKAGE, package)
        yield f'mmcnv2.{package}', osp.join(path, '__init__.py')
        for info in pkgutil.walk_packages([path], f'mmcnv2.{package}.'):
            file = osp.join(PACKAGE, *info.name.split('.')[1:])
            yield info.name, osp.join(file, '__init__.py') if info.ispkg else file + '.py'


def _imports(module, file):
    """``(absolute name, line, at module level)`` of every mmcnv2 import of ``file``."""
    tree = ast.parse(open(file).read())
    top = {id(node) for node in tree.body}
    package = module if file.endswith('__init__.py') else module.rpartition('.')[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            name = node.module or ''
            if node.level:  # relative: up level - 1 packages from this one
                base = package.split('.')
                name = '.'.join(base[:len(base) - node.level + 1] + ([name] if name else []))
            names = [f'{name}.{a.name}' for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            if name.startswith('mmcnv2'):
                yield name, node.lineno, id(node) in top


def test_models_and_ops_import_nothing_above_them_and_nothing_locally():
    wrong, local = [], []
    for module, file in _modules(LOWER):
        for name, line, at_top in _imports(module, file):
            if name.startswith(HIGHER):
                wrong.append(f'{file}:{line} imports {name}')
            if not at_top:
                local.append(f'{file}:{line} imports {name} inside a function')
    assert not wrong and not local, wrong + local
