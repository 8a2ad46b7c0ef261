#!/bin/sh
set -eu
dst=/work/https-research/certs/site.test.pem
cat "$LEGO_CERT_PATH" "$LEGO_CERT_KEY_PATH" > "$dst.tmp"; mv "$dst.tmp" "$dst"
kill -USR2 "$(cat /work/https-research/run/haproxy.pid)"
