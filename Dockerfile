# production_control image. Stages run from least to most volatile, so a
# release that only changes Python code rebuilds (and ships) only the last one.
#
#   deps     base image + OS packages + /opt/venv with the locked packages, in
#            one layer per dependency group (deps/layers.toml). Built and pushed
#            as production-control-deps:<tag> only when its inputs change (the
#            base image, this file's deps stages, requirements.lock, deps/).
#   runtime  FROM that pushed deps image (DEPS_IMAGE), plus the app code only.
#
# Secrets (a CA bundle for TLS-inspecting proxies, a private index URL) come in
# as BuildKit secrets `ca_bundle` and `pip_index_url`; they never reach a layer.

# Pinned official image for real users; the test bed passes an offline Debian base.
ARG PYTHON_IMAGE=python:3.12.12-slim-bookworm
# Default: the deps stage of this same build (one-shot local builds). Releases
# pass the pushed image, e.g. localhost:5000/production-control-deps:deps-1.0.0-abcdef123456.
ARG DEPS_IMAGE=deps

# --- os: changes only when the base image or the OS package list changes -----
FROM ${PYTHON_IMAGE} AS os
# OS packages, the `app` user, /data and /app, no setuid/setgid file: deps/os-layer.sh says what and why.
# It is bind-mounted rather than written out here, so the image config's history
# (which every server downloads with every release) holds one short line for it.
RUN --mount=type=bind,source=deps/os-layer.sh,target=/tmp/os-layer.sh sh /tmp/os-layer.sh
WORKDIR /app

# --- venv: throwaway; an empty venv, the pip that fills it, the lock --------------
FROM os AS venv
RUN python3 -m venv /opt/pip-tool && python3 -m venv --without-pip /opt/venv
COPY requirements.lock deps/layers.toml deps/select_layer.py deps/install-layer.sh /deps/

# --- layer-*: one stage per dependency layer (deps/layers.toml), bottom to top ----
# Each installs only its group's locked packages, so each becomes an independent
# layer: bumping one package changes one layer. SOURCE_DATE_EPOCH makes .pyc
# files hash-based, so identical inputs give identical layers on any builder.
FROM venv AS layer-1
ARG SOURCE_DATE_EPOCH=0
RUN --mount=type=secret,id=ca_bundle,required=false --mount=type=secret,id=pip_index_url,required=false \
    /deps/install-layer.sh 1

FROM venv AS layer-2
ARG SOURCE_DATE_EPOCH=0
RUN --mount=type=secret,id=ca_bundle,required=false --mount=type=secret,id=pip_index_url,required=false \
    /deps/install-layer.sh 2

FROM venv AS layer-3
ARG SOURCE_DATE_EPOCH=0
RUN --mount=type=secret,id=ca_bundle,required=false --mount=type=secret,id=pip_index_url,required=false \
    /deps/install-layer.sh 3

FROM venv AS layer-rest
ARG SOURCE_DATE_EPOCH=0
RUN --mount=type=secret,id=ca_bundle,required=false --mount=type=secret,id=pip_index_url,required=false \
    /deps/install-layer.sh rest

# --- deps: what production runs on, nothing of the app --------------------------
FROM os AS deps
# The venv skeleton, then each dependency layer, most stable first. COPY --link
# makes every layer independent of those below it (reused as-is by any builder).
# The whole venv (not just site-packages) ships, so console scripts like uvicorn work.
COPY --link --from=venv /opt/venv /opt/venv
COPY --link --from=layer-1 /opt/venv/ /opt/venv/
COPY --link --from=layer-2 /opt/venv/ /opt/venv/
COPY --link --from=layer-3 /opt/venv/ /opt/venv/
COPY --link --from=layer-rest /opt/venv/ /opt/venv/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# The deps tag this image is released as; /healthz reports it.
ARG DEPS_TAG=dev
ENV PRODUCTION_CONTROL_DEPS_TAG=$DEPS_TAG

# --- runtime: the deps image plus the code; the only stage a code release rebuilds
FROM ${DEPS_IMAGE} AS runtime
# Process wiring: changes rarely, so it sits below the code.
COPY --link docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
COPY --link crontab /etc/production-control/crontab
# The code and the app version (read from pyproject.toml at start-up).
COPY --link pyproject.toml /app/pyproject.toml
COPY --link production_control /app/production_control
ARG GIT_COMMIT=unknown
ENV PRODUCTION_CONTROL_GIT_COMMIT=$GIT_COMMIT \
    DATA_DIR=/data
EXPOSE 8000
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["all"]
