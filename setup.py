"""mmcnv2: CondenseNetV2 and SFR-ShuffleNetV2 for MMDetection and MMPretrain.

Install into an existing OpenMMLab environment (torch, mmcv with ops, mmdet, mmpretrain)::

    pip install --no-build-isolation /path/to/mmcnv2      # or -e for a checkout you edit

``--no-build-isolation`` because the install also compiles ``mmcnv2._ext`` (the C++ loop of
the fused dense stage, ``mmcnv2/ops/csrc``) against the torch already installed: an isolated
build would compile against another torch, or none. Set ``MMCNV2_WITH_OPS=0`` to skip the
extension (the fused stages then run their loop in Python). The version ranges below are the
ones tested (README "Installation"); mmcv must be built with ops (``pip install mmcv``
builds it from source; ``tools/build_mmcv.sh`` does it for torch >= 2.10).

Every install also exposes the configs, tools and model index to OpenMMLab's ``mim`` in
``mmcnv2/.mim`` (see ``add_mim_extension``); the version is read from ``mmcnv2/version.py``.
"""
import atexit
import os
import os.path as osp
import platform
import shutil
import sys

from setuptools import find_packages, setup

#: Tested ranges (README "Installation"): torch 2.11 and 2.14 with their torchvision,
#: Python 3.11 and 3.12, the OpenMMLab 2.x releases mmdet 3.3 / mmpretrain 1.2 support.
INSTALL_REQUIRES = [
    'torch>=2.11,<2.15',
    'torchvision>=0.26,<0.30',
    'mmcv>=2.1.0,<2.2.0',  # mmdet 3.3 asserts mmcv < 2.2
    'mmengine>=0.10.7,<0.11',
    'mmdet>=3.3.0,<3.4',
    'mmpretrain>=1.2.0,<1.3',
    'numpy>=2.4,<2.6',
    'setuptools>=77,<81',  # mmengine finds mmdet::/mmpretrain:: base configs with pkg_resources
]

EXTRAS_REQUIRE = {
    'tests': ['pytest>=8', 'scikit-learn>=1.7'],
    'deploy': ['onnx>=1.23', 'onnxscript>=0.7', 'onnxruntime>=1.30', 'openvino>=2025.0'],
}

ROOT = osp.dirname(osp.abspath(__file__))


def get_version():
    """The version written in mmcnv2/version.py, read without importing the package."""
    namespace = {}
    with open(osp.join(ROOT, 'mmcnv2', 'version.py')) as f:
        exec(compile(f.read(), 'mmcnv2/version.py', 'exec'), namespace)
    return namespace['__version__']


# What mim (OpenMMLab's package manager) and mmcnv2.model_zoo find in mmcnv2/.mim.
MIM_FILES = ['configs', 'tools', 'model-index.yml']
MIM_PACKAGE_DATA = ['.mim/model-index.yml', '.mim/configs/**/*.py', '.mim/configs/**/*.yml',
                    '.mim/tools/*.py', '.mim/tools/*.sh', '.mim/tools/mmcnv2_tools/*.py']


def _fill_mim_folder(mode):
    mim_path = osp.join(ROOT, 'mmcnv2', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in MIM_FILES:
        src, dst = osp.join(ROOT, name), osp.join(mim_path, name)
        if not osp.exists(src):  # an unpacked sdist: it carries the copies
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_path), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns('__pycache__'))
        else:
            shutil.copyfile(src, dst)


def add_mim_extension():
    """Put configs, tools and model-index.yml into mmcnv2/.mim, where mim looks for them.

    Editable installs (pip install -e, setup.py develop) get symbolic links to this
    checkout; wheels and source distributions get copies, which are turned back into
    links when the build ends, so that no stale copy stays in the checkout (on Windows,
    copies throughout). Other commands (build_ext --inplace, egg_info, ...) leave the
    folder as it is.
    """
    link = 'copy' if platform.system() == 'Windows' else 'symlink'
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        _fill_mim_folder(link)
    elif any(command in sys.argv for command in ('bdist_wheel', 'sdist', 'build', 'install')):
        _fill_mim_folder('copy')
        atexit.register(_fill_mim_folder, link)


#: The sources of mmcnv2._ext, split as mmcv splits its ops: the kernel, the loop that
#: calls it, the Python bindings.
EXT_SOURCES = ['mmcnv2/ops/csrc/grouped_conv3x3_g8.cpp', 'mmcnv2/ops/csrc/dense_stage.cpp',
               'mmcnv2/ops/csrc/pybind.cpp']


def write_layout_header():
    """Write ``mmcnv2/ops/csrc/dense_stage_layout.h`` from the one declaration of the C++
    loop's arguments, ``mmcnv2/ops/dense_stage_layout.py`` (read without importing the
    package); the file is left alone when it already says the same, so nothing recompiles."""
    namespace = {}
    layout = osp.join(ROOT, 'mmcnv2', 'ops', 'dense_stage_layout.py')
    with open(layout) as f:
        exec(compile(f.read(), 'mmcnv2/ops/dense_stage_layout.py', 'exec'), namespace)
    text = namespace['cpp_header']()
    header = osp.join(ROOT, 'mmcnv2', 'ops', 'csrc', 'dense_stage_layout.h')
    if osp.exists(header):
        with open(header) as f:
            if f.read() == text:
                return
    with open(header, 'w') as f:
        f.write(text)


def extensions():
    if os.environ.get('MMCNV2_WITH_OPS', '1') == '0':
        return [], {}
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError as error:
        raise SystemExit(f'mmcnv2 compiles its C++ extension against the installed torch ({error}):'
                         ' install torch first, then pip install --no-build-isolation -e . '
                         '(or set MMCNV2_WITH_OPS=0 to skip the extension)')
    write_layout_header()
    ext = CppExtension('mmcnv2._ext', EXT_SOURCES, depends=['mmcnv2/ops/csrc/mmcnv2_ops.h'],
                       extra_compile_args=['-O3', '-std=c++20', '-ffp-contract=fast'])
    return [ext], {'build_ext': BuildExtension}


add_mim_extension()
ext_modules, cmdclass = extensions()
setup(name='mmcnv2', version=get_version(),
      packages=find_packages(include=['mmcnv2', 'mmcnv2.*']),
      package_data={'mmcnv2': MIM_PACKAGE_DATA}, python_requires='>=3.11,<3.13',
      install_requires=INSTALL_REQUIRES, extras_require=EXTRAS_REQUIRE,
      ext_modules=ext_modules, cmdclass=cmdclass)
