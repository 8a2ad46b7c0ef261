#!/bin/bash
# Creates netns sshr-c (client), sshr-j (jump), sshr-a (target) + veths, keys, sshd configs; starts sshds.
set -e
D=/work/ssh-research
for n in sshr-c sshr-j sshr-a; do ip netns add $n; ip -n $n link set lo up; done
mk() { # nsA ifA addrA nsB ifB addrB
  ip link add $2 type veth peer name $5
  ip link set $2 netns $1; ip link set $5 netns $4
  ip -n $1 addr add $3/30 dev $2; ip -n $4 addr add $6/30 dev $5
  ip -n $1 link set $2 up; ip -n $4 link set $5 up
}
mk sshr-c sshr-ca 10.250.0.1 sshr-a sshr-ac 10.250.0.2   # client <-> target direct
mk sshr-c sshr-cj 10.250.0.5 sshr-j sshr-jc 10.250.0.6   # client <-> jump
mk sshr-j sshr-ja 10.250.0.9 sshr-a sshr-aj 10.250.0.10  # jump <-> target (10.250.0.10 not routable from client)
mkdir -p $D/keys $D/run $D/log
[ -f $D/keys/client ] || ssh-keygen -q -t ed25519 -N '' -C sshr-test -f $D/keys/client
[ -f $D/keys/bad ] || ssh-keygen -q -t ed25519 -N '' -C sshr-bad -f $D/keys/bad
cp $D/keys/client.pub $D/keys/authorized_keys; chmod 600 $D/keys/authorized_keys
for s in a j; do
  [ -f $D/keys/host_$s ] || ssh-keygen -q -t ed25519 -N '' -f $D/keys/host_$s
  cat > $D/sshd_$s.conf <<EOC
Port 22
HostKey $D/keys/host_$s
PidFile $D/run/sshd_$s.pid
AuthorizedKeysFile $D/keys/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
LogLevel VERBOSE
MaxSessions 64
MaxStartups 100:30:200
EOC
done
# known_hosts for the client (target direct, jump, target as seen from the jump)
{ printf '10.250.0.2 '; cut -d' ' -f1,2 $D/keys/host_a.pub; printf '10.250.0.6 '; cut -d' ' -f1,2 $D/keys/host_j.pub;
  printf '10.250.0.10 '; cut -d' ' -f1,2 $D/keys/host_a.pub; } > $D/known_hosts
