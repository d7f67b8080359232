#!/usr/bin/env bash
# Bring up (or tear down) a single-node Slurm cluster on this machine, for the requeue test.
#
#   bash tests/slurm_cluster.sh up     write /etc/slurm/slurm.conf, start munged, slurmctld, slurmd;
#                                      wait until the node is idle. Idempotent: a cluster that is
#                                      already answering is left alone (prints "already up").
#   bash tests/slurm_cluster.sh down   stop the daemons this script started (pid files below).
#   bash tests/slurm_cluster.sh status exit 0 when `sinfo` answers and the node is usable.
#   bash tests/slurm_cluster.sh running exit 0 when its slurmctld runs (pid file), answering or not:
#                                      whether another test session owns the cluster.
#
# Needs root and Debian's slurm-wlm + munge (`bash scripts/setup.sh --slurm` installs them).
# Knobs: SLURM_TEST_STATE (state/spool/log/pid directory, default /var/tmp/astrollama-slurm),
# SLURM_TEST_KILLWAIT (seconds between SIGTERM and SIGKILL on cancel/requeue, default 60),
# SLURM_TEST_CRED_EXPIRE (credential lifetime = delay before a requeued job may start, default 10).
# Daemons are tracked by their pid files, never by name, so the two-node cluster of
# tests/slurm_cluster2.sh (own SLURM_CONF, ports, pid files) can run at the same time.
set -euo pipefail

cmd=${1:-up}
STATE=${SLURM_TEST_STATE:-/var/tmp/astrollama-slurm}
KILLWAIT=${SLURM_TEST_KILLWAIT:-60}
CRED_EXPIRE=${SLURM_TEST_CRED_EXPIRE:-10}
CONF=/etc/slurm/slurm.conf
export SLURM_CONF=$CONF  # this cluster's commands, whatever the caller's SLURM_CONF says
HOST=$(hostname -s)
MUNGED_PID=/var/tmp/astrollama-munged.pid  # shared with tests/slurm_cluster2.sh: whoever stops last

die() { echo "slurm_cluster.sh: $*" >&2; exit 1; }

answering() { timeout 5 sinfo -h -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated|completing)'; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }  # $1: pid file

case "$cmd" in
  status)
    answering
    exit $?
    ;;
  running)  # exit 0 when this cluster's slurmctld runs (its pid file), answering or not
    alive "$STATE/slurmctld.pid"
    exit $?
    ;;
  down)
    for pidf in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" "$MUNGED_PID"; do
      # munged is shared with tests/slurm_cluster2.sh: leave it while any Slurm daemon still runs
      if [ "$pidf" = "$MUNGED_PID" ] && { pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; }; then
        continue
      fi
      if [ -s "$pidf" ]; then
        pid=$(cat "$pidf")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        rm -f "$pidf"
      fi
    done
    echo "slurm_cluster.sh: down"
    exit 0
    ;;
  up) ;;
  *) die "unknown command $cmd (up|down|status|running)" ;;
esac

[ "$(id -u)" = 0 ] || die "needs root (it writes /etc/slurm and starts daemons)"
for b in slurmctld slurmd munged mungekey sinfo; do
  command -v "$b" >/dev/null 2>&1 || die "$b not found: run 'bash scripts/setup.sh --slurm' (apt slurm-wlm munge)"
done

mkdir -p "$STATE"/{ctld,spool,log} /etc/slurm /run/munge /var/log/munge /var/lib/munge /etc/munge

# munge: one key, owned by munge, mode 400; munged runs as the munge user.
if [ ! -s /etc/munge/munge.key ]; then
  mungekey -c -f -k /etc/munge/munge.key
fi
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key; chmod 0755 /run/munge
# munged must answer, not merely run: one whose socket was removed (a second munged started beside
# it, then stopped) runs on and refuses nothing, but every Slurm daemon fails to authenticate
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  if alive "$MUNGED_PID"; then kill "$(cat "$MUNGED_PID")" 2>/dev/null || true; fi
  runuser -u munge -- munged --force
  cp /run/munge/munged.pid "$MUNGED_PID"  # its own pid file (pgrep could catch the pre-fork parent)
fi

cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
cat > "$CONF.tmp" <<EOF
# Written by tests/slurm_cluster.sh: a single-node test cluster (not for production).
ClusterName=astrollama-test
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
# cred_expire is also how long a requeued job waits before it may start again (default 120 s)
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
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
MpiDefault=none
NodeName=$HOST CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
if cmp -s "$CONF.tmp" "$CONF" && answering; then
  rm -f "$CONF.tmp"
  echo "slurm_cluster.sh: already up"
  exit 0
fi
mv "$CONF.tmp" "$CONF"
if answering; then  # running with another configuration: restart the daemons on this one
  scontrol shutdown >/dev/null 2>&1 || true
  for _ in $(seq 50); do alive "$STATE/slurmctld.pid" || alive "$STATE/slurmd.pid" || break; sleep 0.2; done
fi

alive "$STATE/slurmctld.pid" || slurmctld
alive "$STATE/slurmd.pid" || slurmd

for _ in $(seq 60); do
  if answering; then
    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
    echo "slurm_cluster.sh: up ($HOST, $cpus CPUs, ${mem_mb} MB)"
    exit 0
  fi
  sleep 1
done
sinfo >&2 || true
tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
die "the cluster did not come up within 60 s (logs above)"
