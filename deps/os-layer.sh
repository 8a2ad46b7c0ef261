#!/bin/sh
# The os stage's one RUN (build time only; bind-mounted, so the image config's
# history records this file's name rather than its whole text).
# cron runs the jobs; curl serves the healthcheck; util-linux gives flock and setpriv.
# The upgrade brings the base's own packages up to the current Debian updates (what
# `invoke build-deps --refresh` picks up); the package set is recorded for the SBOM.
# Logs and caches that hold build times are removed, and SOURCE_DATE_EPOCH (0, as every
# build passes) fixes the password-change date useradd writes: the layer is reproducible.
# Last, every setuid and setgid bit goes (su, passwd, mount, crontab...): swarm cannot set
# no-new-privileges (docker stack deploy drops security_opt), and nothing needs one: the
# entrypoint drops to `app` with setpriv, cron runs as root and its jobs as `app` by setuid().
set -eu
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-0}"
apt-get update
apt-get upgrade -y --no-install-recommends
apt-get install -y --no-install-recommends cron curl util-linux
install -d -m 0755 /usr/share/production-control
dpkg-query -W -f '${binary:Package}=${Version}\n' | LC_ALL=C sort >/usr/share/production-control/debian-packages.txt
rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
       /var/log/alternatives.log /var/cache/debconf/*-old /var/lib/dpkg/*-old \
       /var/cache/ldconfig/aux-cache
groupadd --system --gid 10001 app
useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app
install -d -o app -g app -m 0750 /data
install -d -m 0755 /app
find / -xdev -perm /6000 -type f -exec chmod a-s {} +
