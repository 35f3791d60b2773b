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
# Job control: each worker in its own process group, so a Ctrl-C at the terminal reaches the
# workers once, from the trap below, not twice (a second interrupt could cut the chief's save).
set -m

if [ $# -lt 1 ] || ! [ "$1" -ge 1 ] 2>/dev/null; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
count=$1
shift
repo=$(cd "$(dirname "$0")/.." && pwd)
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

pids=()
stop() {
  echo "stopping workers ${pids[*]}" >&2
  kill -INT "${pids[@]}" 2>/dev/null
}
trap stop INT TERM

for index in $(seq 0 $((count - 1))); do
  (
    export TF_CONFIG="{\"cluster\": {\"worker\": [$workers]}, \"task\": {\"type\": \"worker\", \"index\": $index}}"
    export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-$index}
    export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
    trap - INT TERM
    exec "$python" -m edvr.train --no_progress "$@"
  ) >"$LOG_DIR/worker_$index.log" 2>&1 &
  pids+=($!)
  echo "worker $index: pid ${pids[-1]}, log $LOG_DIR/worker_$index.log"
done

status=0
for index in "${!pids[@]}"; do
  # wait returns early (> 128) when a trapped signal arrives: wait again for the same worker.
  while :; do
    wait "${pids[$index]}"
    code=$?
    kill -0 "${pids[$index]}" 2>/dev/null || break
  done
  if [ "$code" -ne 0 ]; then
    echo "worker $index failed (exit status $code): see $LOG_DIR/worker_$index.log" >&2
    [ "$status" -ne 0 ] || status=$code
  fi
done
exit $status
