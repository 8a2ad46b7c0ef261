#!/bin/sh
# N master-worker reloads (SIGUSR2), alternating the cert file on disk, one every 2 s
dst=/work/https-research/certs/site.test.pem
for i in $(seq 1 $1); do
  if [ $((i % 2)) = 1 ]; then f=run/B.pem; else f=run/A.pem; fi
  cp $f $dst.tmp && mv $dst.tmp $dst && kill -USR2 $(cat run/haproxy.pid)
  sleep 2
done
