# Set-up and main jobs. The environment lives in .venv/ unless MMCNV2_VENV names another place;
# tools/setup_env.sh creates it when missing (and rebuilds it when requirements/ change).
# MMCNV2_DEVICE=auto|cpu|cuda chooses what mmcv's compiled ops are built for (auto: cuda where
# torch sees a GPU); see README "Set-up".
VENV := $(if $(MMCNV2_VENV),$(MMCNV2_VENV),$(CURDIR)/.venv)
PY := $(VENV)/bin/python
export MMCNV2_VENV := $(VENV)
WORK_DIR ?= work_dirs
TORCH ?= 2.11.0
PYTHON ?= 3.12

.PHONY: env demo demo-cls compare test check-install gpu-wheels model-index

env:
	@bash tools/setup_env.sh

## make demo: RetinaNet + CondenseNetV2 from scratch on real aerial tree crowns (CPU: 8.3 min on an idle 2-core machine, longer on a loaded one)
demo: env
	$(PY) tools/demo.py det --work-dir $(WORK_DIR)/demo_det

## make demo-cls: CondenseNetV2 on real handwritten digits, sparsified, converted (2.6 min on an idle 2-core machine, 22 min on a loaded one; varies)
demo-cls: env
	$(PY) tools/demo.py cls --work-dir $(WORK_DIR)/demo_cls

## make compare: accuracy per FLOP of our backbones against mmpretrain's at matched FLOPs:
## the digits with 3 seeds, the trees with 2 (20 trainings, 4.0 h of 1-thread CPU time;
## measured in README "Accuracy per FLOP"); tools/compare.py's default is 3 seeds for both
compare: env
	$(PY) tools/compare.py --tasks cls --seeds 0 1 2 --out-dir $(WORK_DIR)/compare/cls
	$(PY) tools/compare.py --tasks det --seeds 0 1 --out-dir $(WORK_DIR)/compare/det

## make test: the test suite
test: env
	$(PY) -m pytest -q -p no:cacheprovider

## make check-install TORCH=2.11.0 PYTHON=3.12: `pip install` into another OpenMMLab
## environment (built once, with mmcv for that torch) and a part of the suite against it
check-install:
	@bash tools/check_install.sh $(TORCH) $(PYTHON)

## make gpu-wheels: what tools/gpu_run.sh installs on the GPU machine, which has no registry
gpu-wheels: env
	@bash tools/gpu_wheels.sh

## make model-index: regenerate model-index.yml and configs/metafiles/ from the paper's tables
model-index: env
	$(PY) tools/model_index.py
