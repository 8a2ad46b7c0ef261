# A local stand-in for python:3.12 (the seed's base image): this machine has no
# Docker Hub, so it is the test bed's offline Debian bookworm base plus pip.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update && \
    apt-get install -y --no-install-recommends python3-pip && \
    apt-get clean && rm -rf /var/lib/apt/lists/*
# python:3.12 lets pip install system-wide; Debian marks its Python as externally
# managed (PEP 668), so allow it, as the seed's `pip install` lines expect.
ENV PIP_BREAK_SYSTEM_PACKAGES=1
