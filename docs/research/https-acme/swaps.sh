#!/bin/sh
# N runtime swaps alternating A/B, one every 1 s
dst=/work/https-research/certs/site.test.pem
for i in $(seq 1 $1); do
  if [ $((i % 2)) = 1 ]; then f=run/B.pem; else f=run/A.pem; fi
  python3 hap.py "set ssl cert $dst" $f >/dev/null && python3 hap.py "commit ssl cert $dst" | grep -q Success || echo "swap $i failed"
  sleep 1
done
