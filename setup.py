"""mmcnv2: CondenseNetV2 and SFR-ShuffleNetV2 for MMDetection and MMPretrain.

``pip install --no-build-isolation -e .`` also compiles ``mmcnv2._ext`` (the C++ loop of
the fused dense stage, ``mmcnv2/ops/csrc``) against the installed torch; set
``MMCNV2_WITH_OPS=0`` to skip it (the fused stages then run their loop in Python).
"""
import os

from setuptools import find_packages, setup


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
      ext_modules=ext_modules, cmdclass=cmdclass)
