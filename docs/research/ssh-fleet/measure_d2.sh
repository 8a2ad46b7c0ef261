#!/bin/bash
# (d) part 2: kill the sshd child behind a ControlMaster while a muxed session runs; next call; remote command survival; hung listener.
D=/work/ssh-research; S="ip netns exec sshr-c ssh -F $D/client.cfg -o LogLevel=INFO"
$S -O exit target-mux 2>/dev/null
$S target-mux true; echo "master: $($S -O check target-mux 2>&1)"
$S target-mux 'sleep 33; echo finished' > $D/run/m.out 2>&1 & c=$!
sleep 1.5
child=$(pgrep -f '^bash -c sleep 33; echo finished'); while ! ps -o args= -p $child | grep -q '^sshd:'; do child=$(ps -o ppid= -p $child | tr -d ' '); done
echo "sshd child of mux master: $(ps -o pid=,args= -p $child)"
tk=$(date +%s%N); kill -9 $child; wait $c; rc=$?
echo "muxed session: rc=$rc after $(( ($(date +%s%N)-tk)/1000000 ))ms: $(cat $D/run/m.out)"
echo "remote command still running after sshd child died: $(pgrep -fa '^sleep 33$' || echo no)"
echo "master check: $($S -O check target-mux 2>&1)"; ls $D/run/ | grep cm- || echo "no control socket left"
t0=$(date +%s%N); $S target-mux 'echo next-call-ok'; echo "next call rc=$? $(( ($(date +%s%N)-t0)/1000000 ))ms"
$S -O exit target-mux 2>&1
pkill -f '^sleep 33$'
# listener hung (SIGSTOP): TCP accepted by kernel, no banner
L=$(cat $D/run/sshd_a.pid); kill -STOP $L
t0=$(date +%s%N); $S -o ConnectTimeout=3 target true; echo "hung-listener ConnectTimeout=3: rc=$? $(( ($(date +%s%N)-t0)/1000000 ))ms"
kill -CONT $L
# ConnectTimeout passed as ONE argv element, as docker CLI does:
$S "-o ConnectTimeout=30" -T -- target 'echo one-argv-ok'; echo "rc=$?"
