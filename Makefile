# The two commands a newcomer runs are `make demo` and `make test`; both install first.
# `make test` also runs `pureffcv check` on every shipped spec.
.PHONY: install test demo clean

install:
	@bash scripts/install.sh

test: install
	.venv/bin/pureffcv check specs/*.yaml
	.venv/bin/python -m pytest -q

demo: install
	.venv/bin/pureffcv demo

clean:
	rm -rf .venv .install-stamp build *.egg-info
