#!/usr/bin/env bash
# Data-parallel EDVR training on the 8 NPUs of one Ascend 910 server (HCCL), as the modelzoo's
# 8p scripts start it: one `python -m edvr.train --device npu` process per device, each with its
# RANK_ID / DEVICE_ID, all sharing RANK_SIZE=8 and the HCCL rank table.
#
# Usage: scripts/run_8p_train.sh RANK_TABLE.json LOG_DIR [edvr.train options...]
#   e.g. scripts/run_8p_train.sh /etc/hccl_8p.json runs/edvr_m_8p --config configs/edvr_m.yaml \
#            --data_dir /data/REDS --output runs/edvr_m_8p
# Needs: CANN toolkit + TF 1.15 adapter (source <toolkit>/set_env.sh), the EDVR custom operator
# package installed (README, "Ascend"). The rank table lists each device's IP: see
# scripts/rank_table_8p.example.json and `hccn_tool -i <device> -ip -g`. Exit status: 0 if every
# rank succeeded, else the first failing rank's. Ctrl-C (or TERM) is passed to all ranks as
# SIGINT, then the script waits for them.
set -euo pipefail

if [ $# -lt 2 ]; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
rank_table=$(readlink -f "$1")
log_dir=$2
shift 2
[ -f "$rank_table" ] || { echo "rank table not found: $rank_table" >&2; exit 2; }
python -c "import npu_bridge" 2>/dev/null || {
  echo "npu_bridge (CANN's TF adapter) is not importable: source the toolkit's set_env.sh in a TF 1.15 environment" >&2
  exit 2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
# start_worker, wait_for_workers; Ctrl-C and TERM go on to the ranks.
. "$repo/scripts/worker_processes.sh"
mkdir -p "$log_dir"
export RANK_SIZE=8
export RANK_TABLE_FILE=$rank_table
export JOB_ID=${JOB_ID:-10087}

run_rank() {  # run_rank RANK [edvr.train options...]
  export RANK_ID=$1 DEVICE_ID=$1 ASCEND_DEVICE_ID=$1
  shift
  cd "$repo"
  exec python -m edvr.train --device npu --no_progress "$@"
}

for rank in $(seq 0 $((RANK_SIZE - 1))); do
  start_worker "rank $rank" "$log_dir/rank_$rank.log" run_rank "$rank" "$@"
done
wait_for_workers
