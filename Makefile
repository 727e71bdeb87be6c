# Set-up and main jobs. The environment lives in .venv/ unless MMCNV2_VENV names another place;
# tools/setup_env.sh creates it when missing (and rebuilds it when requirements/ change).
VENV := $(if $(MMCNV2_VENV),$(MMCNV2_VENV),$(CURDIR)/.venv)
PY := $(VENV)/bin/python
export MMCNV2_VENV := $(VENV)
WORK_DIR ?= work_dirs

.PHONY: env demo demo-cls test

env:
	@bash tools/setup_env.sh

## make demo: RetinaNet + CondenseNetV2 from scratch on real aerial tree crowns (CPU, ~1 hour)
demo: env
	$(PY) tools/demo.py det --work-dir $(WORK_DIR)/demo_det

## make demo-cls: CondenseNetV2 on real handwritten digits, sparsified, converted (22 min on a loaded 2-core machine; varies)
demo-cls: env
	$(PY) tools/demo.py cls --work-dir $(WORK_DIR)/demo_cls

## make test: the test suite
test: env
	$(PY) -m pytest -q -p no:cacheprovider
