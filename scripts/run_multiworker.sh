#!/usr/bin/env bash
# Data-parallel EDVR training with N worker processes on this host, on TensorFlow's collective
# all-reduce: one `python -m edvr.train` per worker, each with its TF_CONFIG (worker i of N on
# a free 127.0.0.1 port), CUDA_VISIBLE_DEVICES=i (one GPU each, if there are GPUs).
#
# Usage: scripts/run_multiworker.sh N [edvr.train options...]
#   e.g. scripts/run_multiworker.sh 2 --config configs/edvr_m.yaml --data_dir data/REDS \
#            --output runs/edvr_m_2w --batch_size 8
# Every worker gets the same options; --batch_size is per worker. Logs: LOG_DIR/worker_I.log
# (LOG_DIR defaults to OUTPUT/../<name>_workers, or a temporary folder). PYTHON picks the
# interpreter (default: .venv/bin/python if present, else python3). Exit status: 0 if every
# worker succeeded, else the first failing worker's. Ctrl-C (or TERM) is passed to all
# workers (the chief saves a checkpoint), then the script waits for them.
set -uo pipefail

if [ $# -lt 1 ] || ! [ "$1" -ge 1 ] 2>/dev/null; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
count=$1
shift
repo=$(cd "$(dirname "$0")/.." && pwd)
# start_worker, wait_for_workers; Ctrl-C and TERM go on to the workers.
. "$repo/scripts/worker_processes.sh"
python=${PYTHON:-}
if [ -z "$python" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then python=$repo/.venv/bin/python; else python=python3; fi
fi

# The run folder, to put the logs beside it.
output=
previous=
for arg in "$@"; do
  case $previous in --output) output=$arg ;; esac
  case $arg in --output=*) output=${arg#--output=} ;; esac
  previous=$arg
done
if [ -z "${LOG_DIR:-}" ]; then
  if [ -n "$output" ]; then
    LOG_DIR="${output%/}_workers"
  else
    LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/edvr_workers.XXXXXX")
  fi
fi
mkdir -p "$LOG_DIR"

# Free ports: the kernel picks them (bind to port 0); all sockets stay open until every port
# is chosen, so the N ports differ.
ports=$("$python" - "$count" <<'EOF'
import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))
EOF
) || { echo "could not find $count free ports" >&2; exit 2; }
workers=
for port in $ports; do workers="$workers${workers:+, }\"127.0.0.1:$port\""; done

run_worker() {  # run_worker INDEX [edvr.train options...]
  local index=$1
  shift
  export TF_CONFIG="{\"cluster\": {\"worker\": [$workers]}, \"task\": {\"type\": \"worker\", \"index\": $index}}"
  export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-$index}
  export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
  exec "$python" -m edvr.train --no_progress "$@"
}

for index in $(seq 0 $((count - 1))); do
  start_worker "worker $index" "$LOG_DIR/worker_$index.log" run_worker "$index" "$@"
done
wait_for_workers
