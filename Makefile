# LCLStream: `make demo` runs the main job locally, `make test` runs the whole test suite.
# Both create .venv and install everything they need on a fresh machine.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
export LCLSTREAM_CACHE ?= $(CURDIR)/.cache

# command:Debian package pairs; a package is installed only when its command is missing
KAFKA_NEEDS := java:default-jre-headless mvn:maven
APT_NEEDS := $(KAFKA_NEEDS) slurmctld:slurm-wlm slurmd:slurm-wlm sbatch:slurm-client munged:munge chromium:chromium setfacl:acl

.PHONY: test demo demo-transfer demo-streamer venv lint apt apt-kafka clean

$(STAMP): pyproject.toml
	@echo "== creating $(VENV) with $$($(PYTHON) --version)"
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -U pip
	@echo "== installing LCLStream and its test extras from PyPI into $(VENV) (1-3 minutes the first time; pip lists each package)"
	$(PIP) install --no-color -e '.[test]'
	@echo "== $(VENV) is ready"
	touch $(STAMP)

venv: $(STAMP)

apt-kafka: NEEDS = $(KAFKA_NEEDS)
apt: NEEDS = $(APT_NEEDS)
apt apt-kafka:
	@missing=""; for pair in $(NEEDS); do cmd=$${pair%%:*}; pkg=$${pair#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || [ -x /usr/sbin/$$cmd ] || case " $$missing " in *" $$pkg "*) ;; *) missing="$$missing $$pkg";; esac; done; \
	if [ -n "$$missing" ]; then \
	  echo "== installing Debian packages as root:$$missing (slurm-wlm and munge enable their system services; the tests start their own daemons)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

lint: venv
	$(VENV)/bin/ruff check --no-cache .

test: venv apt lint
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/pytest

demo: venv apt-kafka
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m airflow_provider_lclstream.local_site.demo

demo-transfer: venv
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m lclstream_api.demo

demo-streamer: venv
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m streamer.demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache demo-output
