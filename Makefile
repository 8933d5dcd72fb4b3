# The two commands a newcomer runs are `make demo` and `make test`; both install first.
.PHONY: install test demo check clean

install:
	@bash scripts/install.sh

test: install
	.venv/bin/python -m pytest -q

check: install
	.venv/bin/pureffcv check specs/*.yaml

clean:
	rm -rf .venv .install-stamp build *.egg-info
