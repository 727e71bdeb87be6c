from setuptools import find_packages, setup

setup(name='mmcnv2', version='0.1.0', packages=find_packages(include=['mmcnv2', 'mmcnv2.*']))
