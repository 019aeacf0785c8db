# speechattn: set-up, main job, tests, benchmarks.
#
#   make train    install (once), fetch the corpora if the data root lacks them, train recipes/speaker.yaml
#   make test     install (once), run the test suite (without the tests marked slow)
#   make test-slow  install (once), run only the tests marked slow
#   make models   install (once), retrain the shipped models from scratch and export them into the package
#   make bench    attention and encoder benchmarks
#   make bench-peers  install the peers the comparison benchmarks run (silero-vad, webrtcvad,
#                 SpeechBrain for ECAPA-TDNN), pinned, without touching torch
#
# Variables: SPEECHATTN_DATA (data root; default ../shared/data when that folder exists, else
# ./data), PYTHON (default python3), TRAIN_ARGS (extra `speechattn train` options, e.g.
# TRAIN_ARGS="--set train.max_minutes=1"), PYTEST_ARGS (e.g. PYTEST_ARGS="-x tests/cli"),
# SPEECHOCEAN762_CHECKSUM (md5:HEX or sha256:HEX of speechocean762.tar.gz from a source you
# trust. OpenSLR publishes no checksum of it, so none is pinned: by default `make train` accepts
# the download unverified, with a warning, and records its sha256 and md5 in the corpus's
# .prepared file, so that the main job works on a fresh machine; `speechattn data prepare
# speechocean762` alone refuses until given --checksum or --no-verify).

PYTHON ?= python3
SPEECHATTN_DATA ?= $(if $(wildcard ../shared/data/.),$(abspath ../shared/data),$(CURDIR)/data)
export SPEECHATTN_DATA

# `python3 -m` rather than the console script: works without the environment's bin/ on PATH.
SPEECHATTN = $(PYTHON) -m speechattn.cli.main
RECIPE ?= recipes/speaker.yaml
TRAIN_ARGS ?=
PYTEST_ARGS ?=
SPEECHOCEAN762_CHECKSUM ?= --no-verify

MODELS ?=
MODELS_ARGS ?=

.PHONY: help install train test test-slow bench bench-peers models

help:
	@echo "make train   install, prepare the data if missing, train $(RECIPE)"
	@echo "make test    install, run the tests (not the slow ones)"
	@echo "make test-slow  install, run only the slow tests"
	@echo "make bench   run the attention and encoder benchmarks"
	@echo "make models  retrain the shipped models (vad, speaker, phones) and export them into the package"
	@echo "data root:   SPEECHATTN_DATA=$(SPEECHATTN_DATA)"

install: .install.stamp

# Redone when pyproject.toml or speechattn/__init__.py is newer than the stamp (an editable
# install records whether `speechattn` was a regular or a namespace package when installed).
# torch 2.14.1 is pinned with the torchaudio build that matches it (2.11.0). `.[dev]` is every
# extra (train: tensorboard, webdataset, matplotlib) and the test tools; a plain
# `pip install speechattn` is inference only.
.install.stamp: pyproject.toml $(wildcard speechattn/__init__.py)
	$(PYTHON) -m pip install torch==2.14.1 torchaudio==2.11.0
	$(PYTHON) -m pip install -e ".[dev]"
	touch $@

train: install
	@if [ ! -d "$(SPEECHATTN_DATA)/speechocean762" ]; then $(SPEECHATTN) data prepare speechocean762 \
		$(if $(filter --no-verify,$(SPEECHOCEAN762_CHECKSUM)),--no-verify,$(if $(SPEECHOCEAN762_CHECKSUM),--checksum $(SPEECHOCEAN762_CHECKSUM))); fi
	@if [ ! -d "$(SPEECHATTN_DATA)/noise" ]; then $(SPEECHATTN) data prepare noise; fi
	$(SPEECHATTN) train $(RECIPE) $(TRAIN_ARGS)

test: install
	$(PYTHON) -m pytest -q $(PYTEST_ARGS)

test-slow: install
	$(PYTHON) -m pytest -q -m slow $(PYTEST_ARGS)

# The models shipped in the package (recipes/models.yaml): each trained from scratch into
# runs/models/NAME, timed, and exported to speechattn/models/pretrained/NAME.safetensors.
models: install
	@if [ ! -d "$(SPEECHATTN_DATA)/speechocean762" ]; then $(SPEECHATTN) data prepare speechocean762 \
		$(if $(filter --no-verify,$(SPEECHOCEAN762_CHECKSUM)),--no-verify,$(if $(SPEECHOCEAN762_CHECKSUM),--checksum $(SPEECHOCEAN762_CHECKSUM))); fi
	@if [ ! -d "$(SPEECHATTN_DATA)/noise" ]; then $(SPEECHATTN) data prepare noise; fi
	$(PYTHON) benchmarks/train_models.py $(MODELS_ARGS) $(MODELS)

# The peers of benchmarks/vad_baseline.py and benchmarks/speaker_baseline.py (not speechattn
# dependencies). --no-deps: their requirements would replace the pinned torch / torchaudio.
bench-peers: install
	$(PYTHON) -m pip install --no-deps silero-vad==6.2.3 webrtcvad-wheels==2.0.14.post1 \
		speechbrain==1.1.2 hyperpyyaml==1.2.3 "ruamel.yaml>=0.17.28,<0.19"

bench: install
	$(PYTHON) benchmarks/attention.py
	$(PYTHON) benchmarks/encoder.py
