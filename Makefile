# seqhand: `make demo` and `make test` each set up their own virtual environment.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# The CPU build of torch that lies on disk here; install it *before* the package so that
# nothing asks the registry for a newer (CUDA) build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test test-all lint format bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[synth,train,video,export,test]"
	touch $(STAMP)

# Test-only: the OpenGL reference renderer (pyrender on headless EGL). Best effort: without it
# the reference tests skip with a reason; everything else still runs.
GL_STAMP := $(VENV)/.gl
EGL_PKGS := libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 libglib2.0-0  # the last two: opencv (mediapipe)
$(GL_STAMP): $(STAMP)
	-$(PIP) install -q "pyrender>=0.1.45"
	-if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get install -y -q $(EGL_PKGS) >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $(EGL_PKGS) >/dev/null 2>&1); fi
	touch $(GL_STAMP)

# Test-only: MediaPipe's hand detector (the `detector` extra), resolved together with the other
# extras (it needs protobuf<5, so pip picks onnx/tensorboard versions that accept it). Best
# effort: without it the real-detector tests skip with a reason.
DET_STAMP := $(VENV)/.detector
$(DET_STAMP): $(STAMP)
	-$(PIP) install -q -e ".[synth,train,video,export,test,detector]"
	touch $(DET_STAMP)

demo: $(STAMP)
	$(VENV)/bin/seqhand demo --out out/demo

test: $(STAMP) $(GL_STAMP) $(DET_STAMP)
	$(PY) -m pytest -q -m "not slow" -p no:cacheprovider

test-all: $(STAMP) $(GL_STAMP) $(DET_STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) out build *.egg-info
