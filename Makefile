# The two commands a newcomer runs are `make demo` and `make test`; both install first.
# `make test` also runs `pureffcv check` on every shipped spec.
.PHONY: install test demo clean gpu-check

install:
	@bash scripts/install.sh

test: install
	.venv/bin/pureffcv check specs/*.yaml
	.venv/bin/python -m pytest -q

demo: install
	.venv/bin/pureffcv demo

# On a GPU node (torch, numba, Lightning, cupy; no FFCV needed): CUDA tests and device
# benchmarks in one short call, written to gpu_check.json (DEVELOPERS.md).
gpu-check:
	bash scripts/gpu_check.sh

clean:
	rm -rf .venv .install-stamp build *.egg-info
