# pacslb: two commands do all the set-up on a fresh Debian 12 machine, as root.
#   make demo   the appliance in front of simulated True PACS services
#   make test   every test, with the real engines
# Both install what they need (Debian packages, a virtual environment), idempotently.

VENV       ?= .venv
PY         := $(VENV)/bin/python
PYTEST_ARGS ?=
DEBIAN_PACKAGES := haproxy libssl3 socat nftables keepalived iproute2 curl openssl wrk nginx-light dcmtk rabbitmq-server chromium \
	pdns-server pdns-backend-geoip dnsperf bind9-dnsutils \
	etcd-server etcd-client \
	iputils-arping systemd lintian binutils python3-venv \
	apache2 libapache2-mod-security2 modsecurity-crs bird2

.PHONY: demo test lint lock deps venv debs deb clean

demo: deps
	$(VENV)/bin/pacslb demo $(DEMO_ARGS)

test: deps lint
	$(PY) -m pytest $(PYTEST_ARGS)

# ruff: the formatter owns the layout; the checker finds unused imports, likely bugs and noqa without a use
lint: venv
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/ruff check src tests bench

deps: debs venv

# Debian packages: install only what is missing, so a second run asks no registry.
debs:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "error: installing Debian packages needs root (run as root, or install:$$missing)" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@# PowerDNS (GSLB): pacslb runs its own pdns_server per state directory; the Debian service stays stopped
	@if [ -d /run/systemd/system ]; then systemctl disable --now pdns >/dev/null 2>&1 || true; fi
	@if pdns_control --socket-dir=/run/pdns ping >/dev/null 2>&1; then \
	  echo "stopping the system's pdns_server (pacslb runs its own)"; pdns_control --socket-dir=/run/pdns quit >/dev/null 2>&1 || true; \
	fi
	@# the cluster's etcd (issue 20): pacslb runs its own member per state directory; the Debian service stays stopped
	@if [ -d /run/systemd/system ]; then systemctl disable --now etcd >/dev/null 2>&1 || true; fi
	@pid=$$(pgrep -x -u etcd etcd 2>/dev/null | head -1); \
	if [ -n "$$pid" ]; then echo "stopping the system's etcd (PID $$pid; pacslb runs its own)"; kill "$$pid"; fi
	@# the WAF tier runs its own Apache (engines/waf); the system's apache2 stays stopped, whatever started it
	@pid=$$(cat /run/apache2/apache2.pid 2>/dev/null); \
	if [ -n "$$pid" ] && kill -0 "$$pid" 2>/dev/null; then echo "stopping the system's apache2 (PID $$pid)"; apache2ctl stop; fi
	@# BIRD (cluster routing): pacslb runs its own bird per state directory (engines/bird); the system's stays stopped
	@if [ -d /run/systemd/system ]; then systemctl disable --now bird >/dev/null 2>&1 || true; fi
	@if birdc -s /run/bird/bird.ctl show status >/dev/null 2>&1; then \
	  echo "stopping the system's bird (pacslb runs its own)"; birdc -s /run/bird/bird.ctl down >/dev/null 2>&1 || true; \
	fi

# The virtual environment is rebuilt only when pyproject.toml or the lock changes. Every dependency comes from
# requirements.lock, pinned with its hashes (pip refuses a file whose hash is not there); pacslb itself goes in
# editable, without dependencies of its own.
venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --require-hashes -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# After a change of the dependencies in pyproject.toml: pin them again, with hashes (needs pip-tools).
lock: venv
	$(PY) -m pip install -q pip-tools
	$(VENV)/bin/pip-compile -q --generate-hashes --extra test --strip-extras --no-emit-index-url --no-emit-find-links \
	  -o requirements.lock pyproject.toml

# The Debian package, build/deb/pacslb_<version>-<DEB_REVISION>_<arch>.deb (docs/operations.md)
DEB_REVISION ?= 1
deb: venv
	DEV_PY=$(abspath $(PY)) packaging/deb/build.sh $(DEB_REVISION)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build src/*.egg-info
