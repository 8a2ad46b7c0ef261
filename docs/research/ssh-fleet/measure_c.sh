#!/bin/bash
# misc: ControlPersist + captured pipes (no hang?), HOME vs ~/.ssh/config, MaxSessions=10 with 12 concurrent muxed sessions, wrapper-on-PATH
D=/work/ssh-research; N="ip netns exec sshr-c"
$N ssh -F $D/client.cfg -O exit target-mux 2>/dev/null
echo "--- python subprocess.run(capture_output) of the FIRST (master-forking) ControlPersist call:"
$N python3 -c "
import subprocess,time; t=time.time()
r=subprocess.run(['ssh','-F','$D/client.cfg','target-mux','echo hi'],capture_output=True,timeout=30)
print('rc',r.returncode,repr(r.stdout),repr(r.stderr),'%.2fs'%(time.time()-t))"
$N ssh -F $D/client.cfg -O exit target-mux 2>&1
echo "--- HOME=/tmp/fakehome with .ssh/config: does ssh read it?"
mkdir -p $D/run/fakehome/.ssh; printf 'Host fakehome-alias\n  HostName 10.9.9.9\n' > $D/run/fakehome/.ssh/config
HOME=$D/run/fakehome ssh -G fakehome-alias | grep '^hostname'
echo "--- MaxSessions 10 (sshd default) on port 2200, 12 concurrent muxed sessions:"
ip netns exec sshr-a /usr/sbin/sshd -f $D/sshd_a.conf -o Port=2200 -o MaxSessions=10 -o PidFile=$D/run/sshd_a2200.pid -E $D/log/sshd_a2200.log
sleep 0.3
M="$N ssh -F $D/client.cfg -o Port=2200 -o ControlPath=$D/run/cm2200-%C"
$M target-mux true
for i in $(seq 12); do ( $M target-mux 'sleep 2; echo ok' > $D/run/ms$i.out 2>&1; echo "rc=$?" >> $D/run/ms$i.out ) & done; wait
cat $D/run/ms*.out | sort | uniq -c
grep -c "Connection from" $D/log/sshd_a2200.log; grep -i "no more sessions\|error" $D/log/sshd_a2200.log | sort | uniq -c
$M -O exit target-mux 2>&1; kill $(cat $D/run/sshd_a2200.pid)
echo "--- wrapper ssh on PATH (how a docker CLI child would pick it up):"
mkdir -p $D/run/bin; cat > $D/run/bin/ssh <<EOW
#!/bin/sh
exec /usr/bin/ssh -F $D/client.cfg -o ControlMaster=auto -o ControlPath=$D/run/cm-%C -o ControlPersist=60 "\$@"
EOW
chmod +x $D/run/bin/ssh
s0=$(grep -c 'Connection from' $D/log/sshd_a.log); ss0=$(grep -c 'Starting session' $D/log/sshd_a.log)
for i in 1 2 3 4 5; do PATH=$D/run/bin:$PATH $N sh -c 'ssh "-o ConnectTimeout=30" -T -- target "echo x"' >/dev/null; done
echo "5 docker-CLI-shaped calls via wrapper: tcp_conns=$(( $(grep -c 'Connection from' $D/log/sshd_a.log)-s0 )) sessions=$(( $(grep -c 'Starting session' $D/log/sshd_a.log)-ss0 ))"
PATH=$D/run/bin:$PATH $N ssh -O exit target 2>&1
