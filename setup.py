"""mmcnv2: CondenseNetV2 and SFR-ShuffleNetV2 for MMDetection and MMPretrain.

Install into an existing OpenMMLab environment (torch, mmcv with ops, mmdet, mmpretrain)::

    pip install --no-build-isolation /path/to/mmcnv2      # or -e for a checkout you edit

``--no-build-isolation`` because the install also compiles ``mmcnv2._ext`` (the C++ loop of
the fused dense stage, ``mmcnv2/ops/csrc``) against the torch already installed: an isolated
build would compile against another torch, or none. Set ``MMCNV2_WITH_OPS=0`` to skip the
extension (the fused stages then run their loop in Python). The version ranges below are the
ones tested (README "Installation"); mmcv must be built with ops (``pip install mmcv``
builds it from source; ``tools/build_mmcv.sh`` does it for torch >= 2.10).
"""
import os

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
    'deploy': ['onnx>=1.23', 'onnxscript>=0.7', 'onnxruntime>=1.30'],
}


def extensions():
    if os.environ.get('MMCNV2_WITH_OPS', '1') == '0':
        return [], {}
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError as error:
        raise SystemExit(f'mmcnv2 compiles its C++ extension against the installed torch ({error}):'
                         ' install torch first, then pip install --no-build-isolation -e . '
                         '(or set MMCNV2_WITH_OPS=0 to skip the extension)')
    ext = CppExtension('mmcnv2._ext', ['mmcnv2/ops/csrc/fused_dense_stage.cpp'],
                       extra_compile_args=['-O3', '-std=c++20', '-ffp-contract=fast'])
    return [ext], {'build_ext': BuildExtension}


ext_modules, cmdclass = extensions()
setup(name='mmcnv2', version='0.1.0', packages=find_packages(include=['mmcnv2', 'mmcnv2.*']),
      python_requires='>=3.11,<3.13', install_requires=INSTALL_REQUIRES,
      extras_require=EXTRAS_REQUIRE, ext_modules=ext_modules, cmdclass=cmdclass)
