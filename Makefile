# Set-up and main jobs. The environment lives in .venv/ unless MMCNV2_VENV names another place;
# tools/setup_env.sh creates it when missing (and rebuilds it when requirements/ change).
VENV := $(if $(MMCNV2_VENV),$(MMCNV2_VENV),$(CURDIR)/.venv)
PY := $(VENV)/bin/python
export MMCNV2_VENV := $(VENV)
WORK_DIR ?= work_dirs

.PHONY: env demo demo-cls test

env:
	@bash tools/setup_env.sh

## make demo: the main job on data that ships with the project
demo: demo-cls

## make demo-cls: CondenseNetV2 on real handwritten digits, sparsified, converted, evaluated
demo-cls: env
	$(PY) tools/train.py configs/demo/cnv2_digits.py --work-dir $(WORK_DIR)/demo_cls
	$(PY) tools/deploy_check.py configs/demo/cnv2_digits.py $(WORK_DIR)/demo_cls/epoch_12.pth \
		--out $(WORK_DIR)/demo_cls/deploy.pth

## make test: the test suite
test: env
	$(PY) -m pytest -q -p no:cacheprovider
