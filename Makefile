# The two commands a newcomer runs: `make demo` (the main job end to end on the embedded sample) and `make test`.
# Install per need: the demo gets the core plus the `demo` extra (no Ray, MediaPipe or ONNX); the tests (and
# `make install`) get every extra. Both go through constraints.txt (pinned CPU torch, one OpenCV distribution).
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_STAMP := $(VENV)/.installed-demo
ALL_STAMP := $(VENV)/.installed-all

.PHONY: install demo test clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(DEMO_STAMP): setup.cfg setup.py constraints.txt | $(PY)
	$(PY) -m pip install -q -c constraints.txt -e '.[demo]'
	$(PY) -m pip check
	touch $@

$(ALL_STAMP): setup.cfg setup.py constraints.txt | $(PY)
	$(PY) -m pip install -q -c constraints.txt -e '.[all]'
	$(PY) -m pip check
	touch $@ $(DEMO_STAMP)

install: $(ALL_STAMP)

demo: $(DEMO_STAMP)
	$(VENV)/bin/aistpp demo --out demo-output

test: $(ALL_STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
