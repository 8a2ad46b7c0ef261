#!/bin/sh
# lego --run-hook / --renew-hook: runs only when a certificate was obtained or renewed.
# LEGO_CERT_PATH (leaf+issuer bundle) and LEGO_CERT_KEY_PATH are set for both (LEGO_CERT_PEM_PATH only for renew).
set -eu
env | grep '^LEGO_' | sort > /work/https-research/run/hook-env.txt
dst=/work/https-research/certs/site.test.pem
cat "$LEGO_CERT_PATH" "$LEGO_CERT_KEY_PATH" > "$dst.tmp"
mv "$dst.tmp" "$dst"                                             # on disk, for the next reload/restart
python3 /work/https-research/hap.py "set ssl cert $dst" "$dst"    # in memory, no reload
python3 /work/https-research/hap.py "commit ssl cert $dst" | tee /dev/stderr | grep -q '^Success!'
date +%s.%N > /work/https-research/run/hook-done
