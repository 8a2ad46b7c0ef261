#!/bin/sh
# Install one dependency layer's locked packages into /opt/venv (build time only).
# Usage: install-layer.sh SLOT    (1, 2, 3 or rest; see layers.toml)
# Reads the BuildKit secrets ca_bundle (a CA for TLS-inspecting proxies) and
# pip_index_url (a private index), when given. Leaves in /opt/venv only what
# this layer adds, so each layer is its own, independent image layer.
set -eu
slot=$1
if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi
if [ -s /run/secrets/pip_index_url ]; then PIP_INDEX_URL="$(cat /run/secrets/pip_index_url)"; export PIP_INDEX_URL; fi
python3 /deps/select_layer.py /deps/requirements.lock /deps/layers.toml "$slot" >/tmp/layer.txt
if grep -q '==' /tmp/layer.txt; then
  # SOURCE_DATE_EPOCH (a build arg) makes the .pyc files hash-based: reproducible.
  /opt/pip-tool/bin/pip --python /opt/venv/bin/python install --no-cache-dir --disable-pip-version-check \
    --no-deps --require-hashes --only-binary=:all: -r /tmp/layer.txt
fi
# The venv skeleton (interpreter links, activate scripts) ships once, in its own layer.
cd /opt/venv && rm -rf pyvenv.cfg lib64 bin/python bin/python3 bin/python3.* bin/activate* bin/Activate.ps1
