#!/usr/bin/env bash
# A one-node Slurm on this host, for the slow tests of `gdml sweep --cluster slurm` (tests/test_slurm.py): munged,
# slurmctld and slurmd with their configuration, keys, state and logs all in one folder (nothing under /etc, /run or
# /var), stopped again by the PIDs they wrote there. Needs root (slurmd starts jobs as their user) and Debian's
# `slurm-wlm` and `munge` packages (`apt-get install slurm-wlm munge`).
#
#   tools/slurm_local.sh start DIR   start them; prints `export SLURM_CONF=DIR/slurm.conf`, what every Slurm
#                                    command needs to find this cluster
#   tools/slurm_local.sh stop DIR    stop them (SIGTERM, then SIGKILL after 10 s)
#
# The cluster: one partition `debug` of this node, with its cores and 90% of its memory, so that a job asking for more
# is refused at submission as on a real site. SLURM_LOCAL_GPUS=1 declares a GPU (gres, on /dev/null) that is not
# there: a job that asks for a GPU then lands on a node without one, as on a site whose GPU node lost its driver.
# SLURM_LOCAL_PORT (default 6817) and the next port are slurmctld's and slurmd's.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1; dir=$2

stop_pid() {   # $1: a pid file; TERM, then KILL whatever is left after 10 s
  local f=$1 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  kill -TERM "$pid" 2>/dev/null || { rm -f "$f"; return 0; }
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$f"
}

if [ "$action" = stop ]; then
  for d in slurmd slurmctld munged; do stop_pid "$dir/$d.pid"; done
  exit 0
fi
[ "$action" = start ] || usage

for cmd in munged mungekey slurmctld slurmd sinfo; do
  command -v "$cmd" >/dev/null || { echo "$0: $cmd not found: apt-get install slurm-wlm munge" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "$0: needs root (slurmd runs jobs as their user)" >&2; exit 1; }

mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
chmod 700 "$dir/munge"   # munged refuses a key or socket folder that others can write
host=$(hostname -s)
cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)   # nproc alone follows OMP_NUM_THREADS
mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
gpus=${SLURM_LOCAL_GPUS:-0}
case "$gpus" in 0|1) ;; *) echo "$0: SLURM_LOCAL_GPUS must be 0 or 1, got '$gpus'" >&2; exit 2 ;; esac
port=${SLURM_LOCAL_PORT:-6817}

mungekey --create --force --keyfile "$dir/munge/munge.key"
munged --force --socket "$dir/munge/munge.socket" --key-file "$dir/munge/munge.key" \
  --pid-file "$dir/munged.pid" --log-file "$dir/munged.log" --seed-file "$dir/munge/munged.seed"

gres_type=; gres_node=
if [ "$gpus" -gt 0 ]; then
  gres_type="GresTypes=gpu"; gres_node="Gres=gpu:$gpus"
  echo "NodeName=$host Name=gpu File=/dev/null" > "$dir/gres.conf"
fi
cat > "$dir/slurm.conf" <<EOF
ClusterName=gdmllocal
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
MinJobAge=600
$gres_type
NodeName=$host CPUs=$cpus RealMemory=$mem $gres_node State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$dir/slurm.conf

slurmctld -f "$SLURM_CONF" -i   # -i: no state from an earlier start of this folder
slurmd -f "$SLURM_CONF" -N "$host"
for _ in $(seq 300); do   # the node reports to slurmctld within seconds
  state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
  case "$state" in idle*|mixed*|allocated*) echo "export SLURM_CONF=$SLURM_CONF"; exit 0 ;; esac
  sleep 0.1
done
echo "$0: the node did not come up (state '${state:-none}'); see $dir/slurmctld.log and $dir/slurmd.log" >&2
"$0" stop "$dir"
exit 1
