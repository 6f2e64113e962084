#!/usr/bin/env bash
# A real one-node Slurm on this machine, for the cluster tests (tests/slurm.rs) and for
# trying the docs/scale-out.md recipes: installs Debian's slurm-wlm and munge, writes a
# one-node configuration, starts munged, slurmctld and slurmd, and waits until the node is
# idle. Idempotent: a second run finds them running. Needs root (apt, daemons).
#
#   scripts/slurm-local.sh          # start (install first if needed)
#   scripts/slurm-local.sh stop     # stop the daemons
#
# The node advertises 4 CPUs whatever the machine has (SlurmdParameters=config_overrides),
# so that a 4-task array runs at once on a 2-core machine, as it would on a real node.
set -euo pipefail

if [ "${1:-}" = stop ]; then
  pkill -x slurmd || true
  pkill -x slurmctld || true
  pkill -x munged || true
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "error: scripts/slurm-local.sh installs packages and starts daemons: run it as root" >&2
  exit 1
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "installing slurm-wlm and munge (Debian packages)…"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null || echo "warning: apt-get update failed; trying the install anyway" >&2
  apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
fi

host=$(hostname -s)
conf=/etc/slurm/slurm.conf
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
cat > "$conf.new" <<CONF
# Written by candle-explain's scripts/slurm-local.sh: one node, everything as root, no
# cgroups (containers rarely delegate them), no accounting.
ClusterName=candle-explain
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MinJobAge=300
KillWait=5
NodeName=$host CPUs=4 RealMemory=2000 State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
mv "$conf.new" "$conf"

if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null ||
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 0400 /etc/munge/munge.key
if ! munge -n >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged
  sleep 0.5
fi
munge -n | unmunge >/dev/null || { echo "error: munged does not answer" >&2; exit 1; }

pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd

for _ in $(seq 1 60); do
  state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
  case "$state" in
    idle*|mixed*|allocated*) echo "slurm is up: node $host is $state"; exit 0 ;;
    down*|drain*) scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
  esac
  sleep 1
done
echo "error: the Slurm node did not become idle in 60 s (state: ${state:-none}); see /var/log/slurm/" >&2
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
