# Scenario "base image change": the test bed's offline base with one more Debian
# package. The benchmark exports this file system and imports it as ONE layer
# (as `scripts/testbed` builds the original base), so, like a real base-image
# update, the bottom layer changes, not just a layer on top.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update && \
    apt-get install -y --no-install-recommends less && \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*
# A file naming the benchmark run: every run gets a new base, as a real base
# update is new to the builder, so no build can reuse an earlier run's cache.
ARG BENCH_RUN
RUN echo "$BENCH_RUN" >/etc/production-control-benchmark-run
