#!/usr/bin/env bash
# Bring up (or tear down) a TWO-node Slurm cluster on this one machine, for the multi-node tests.
#
#   bash tests/slurm_cluster2.sh up      bridge + two node namespaces (n1, n2), munged, slurmctld and
#                                        one slurmd per node; wait until both nodes are idle.
#                                        Idempotent: a cluster that already answers is left alone.
#   bash tests/slurm_cluster2.sh down    stop what this script started, remove namespaces and links.
#   bash tests/slurm_cluster2.sh status  exit 0 when both nodes answer and are usable.
#   bash tests/slurm_cluster2.sh conf    print the slurm.conf path (every Slurm command of this
#                                        cluster needs SLURM_CONF=<that path>).
#
# A "node" is a network + UTS + mount namespace: its own hostname (n1, n2), its own address on a
# bridge made here (10.77.0.11, .12; the controller is the bridge, 10.77.0.1), its own /etc/hosts
# (bind-mounted inside its mount namespace only). Nothing else on the machine is addressed. The
# cluster has its own slurm.conf (SLURM_CONF) and its own ports (6917/6918), and tracks its daemons
# by their pid files, so it coexists with the single-node cluster of tests/slurm_cluster.sh
# (/etc/slurm/slurm.conf, ports 6817/6818). Both share one munged (the munge socket is a path).
#
# Needs root, iproute2, util-linux (nsenter, unshare) and Debian's slurm-wlm + munge
# (`bash scripts/setup.sh --slurm`). Knobs: SLURM_TEST2_STATE (state/spool/log/pid directory,
# default /var/tmp/astrollama-slurm2), SLURM_TEST_KILLWAIT (default 60), SLURM_TEST_CRED_EXPIRE
# (credential lifetime = delay before a requeued job may start, default 10).
set -euo pipefail

cmd=${1:-up}
STATE=${SLURM_TEST2_STATE:-/var/tmp/astrollama-slurm2}
KILLWAIT=${SLURM_TEST_KILLWAIT:-60}
CRED_EXPIRE=${SLURM_TEST_CRED_EXPIRE:-10}
export SLURM_CONF=$STATE/slurm.conf
HOST=$(hostname -s)
BRIDGE=al77br
NET=10.77.0
NODES=(n1 n2)
MUNGED_PID=/var/tmp/astrollama-munged.pid  # shared with tests/slurm_cluster.sh: whoever stops last
declare -A ADDR=([n1]=$NET.11 [n2]=$NET.12)

die() { echo "slurm_cluster2.sh: $*" >&2; exit 1; }

# true when every node answers sinfo in a usable state
answering() {
  [ -s "$SLURM_CONF" ] || return 1
  local ok
  ok=$(timeout 5 sinfo -h -N -o '%N %T' 2>/dev/null | grep -Ec '^n[12] (idle|mixed|allocated|completing)$') || true
  [ "$ok" = 2 ]
}
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }  # $1: pid file
stop_pidfile() {
  alive "$1" || { rm -f "$1"; return 0; }
  local pid; pid=$(cat "$1")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$1"
}

down() {
  stop_pidfile "$STATE/slurmctld.pid"
  for n in "${NODES[@]}"; do
    stop_pidfile "$STATE/slurmd-$n.pid"
    if [ -e "/run/netns/$n" ]; then
      # whatever a job left behind in the node (only our own namespaces' processes)
      for pid in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
      ip netns del "$n"
    fi
    ip link del "al77-$n" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  # munged is shared with tests/slurm_cluster.sh: stop it (if one of the two started it) only
  # when no Slurm daemon is left that could still need it
  if ! pgrep -x slurmctld >/dev/null && ! pgrep -x slurmd >/dev/null; then
    stop_pidfile "$MUNGED_PID"
  fi
}

case "$cmd" in
  status) answering; exit $? ;;
  running) alive "$STATE/slurmctld.pid"; exit $? ;;  # answering or not: another session owns it
  conf) echo "$SLURM_CONF"; exit 0 ;;
  down) down; echo "slurm_cluster2.sh: down"; exit 0 ;;
  up) ;;
  *) die "unknown command $cmd (up|down|status|running|conf)" ;;
esac

[ "$(id -u)" = 0 ] || die "needs root (it makes network namespaces and starts daemons)"
for b in slurmctld slurmd munged mungekey sinfo ip nsenter unshare; do
  command -v "$b" >/dev/null 2>&1 || die "$b not found: run 'bash scripts/setup.sh --slurm' (apt slurm-wlm munge)"
done

mkdir -p "$STATE"/{ctld,spool,log} /run/munge /var/log/munge /var/lib/munge /etc/munge

cpus=$(nproc)
cat > "$SLURM_CONF.tmp" <<EOF
# Written by tests/slurm_cluster2.sh: a two-node test cluster in network namespaces (not for production).
ClusterName=astrollama-test2
SlurmctldHost=$HOST($NET.1)
SlurmctldPort=6917
SlurmdPort=6918
SlurmUser=root
AuthType=auth/munge
AuthInfo=cred_expire=$CRED_EXPIRE
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=$KILLWAIT
MinJobAge=600
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool/%n
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd-%n.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd-%n.log
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
MpiDefault=none
NodeName=n1 NodeAddr=${ADDR[n1]} CPUs=$cpus RealMemory=1000 State=UNKNOWN
NodeName=n2 NodeAddr=${ADDR[n2]} CPUs=$cpus RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
EOF
if cmp -s "$SLURM_CONF.tmp" "$SLURM_CONF" && answering; then
  rm -f "$SLURM_CONF.tmp"
  echo "slurm_cluster2.sh: already up"
  exit 0
fi
down >/dev/null  # half-up or on another configuration: start from nothing
mv "$SLURM_CONF.tmp" "$SLURM_CONF"

# the subnet must be ours alone
if ip -4 -o addr show | grep -v " $BRIDGE " | grep -q " $NET\."; then
  die "$NET.0/24 is already in use on this machine; refusing to add a bridge there"
fi

# munge: one key, owned by munge, mode 400; munged runs as the munge user.
[ -s /etc/munge/munge.key ] || mungekey -c -f -k /etc/munge/munge.key
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key; chmod 0755 /run/munge
# munged must answer, not merely run: one whose socket was removed (a second munged started beside
# it, then stopped) runs on and refuses nothing, but every Slurm daemon fails to authenticate
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  if alive "$MUNGED_PID"; then kill "$(cat "$MUNGED_PID")" 2>/dev/null || true; fi
  runuser -u munge -- munged --force
  cp /run/munge/munged.pid "$MUNGED_PID"  # its own pid file (pgrep could catch the pre-fork parent)
fi

# the network: a bridge (the controller's address) and one veth pair per node
ip link add "$BRIDGE" type bridge
ip addr add "$NET.1/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
{
  echo "127.0.0.1 localhost"
  echo "$NET.1 $HOST"
  for n in "${NODES[@]}"; do echo "${ADDR[$n]} $n"; done
} > "$STATE/hosts"
for n in "${NODES[@]}"; do
  ip netns add "$n"
  ip link add "al77-$n" type veth peer name "eth-$n"
  ip link set "eth-$n" netns "$n"
  ip link set "al77-$n" master "$BRIDGE" up
  ip -n "$n" link set lo up
  ip -n "$n" addr add "${ADDR[$n]}/24" dev "eth-$n"
  ip -n "$n" link set "eth-$n" up
  mkdir -p "$STATE/spool/$n"
done

SLURM_CONF=$SLURM_CONF slurmctld
for n in "${NODES[@]}"; do
  # not `ip netns exec`: it remounts /sys, which hides the cgroup tree slurmd needs. The node name
  # is the UTS hostname; /etc/hosts is replaced inside the node's own mount namespace only.
  nsenter --net="/run/netns/$n" unshare --uts --mount --propagation private \
    sh -c "mount --bind '$STATE/hosts' /etc/hosts && hostname $n && exec slurmd"
done

for _ in $(seq 60); do
  if answering; then
    echo "slurm_cluster2.sh: up (n1 ${ADDR[n1]}, n2 ${ADDR[n2]}, controller $HOST $NET.1, $SLURM_CONF)"
    exit 0
  fi
  for n in "${NODES[@]}"; do scontrol update nodename="$n" state=resume >/dev/null 2>&1 || true; done
  sleep 1
done
sinfo -N >&2 || true
tail -n 20 "$STATE/log/slurmctld.log" "$STATE"/log/slurmd-*.log >&2 || true
die "the cluster did not come up within 60 s (logs above)"
