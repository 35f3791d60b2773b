# Shell functions shared by scripts/run_multiworker.sh and scripts/run_8p_train.sh (sourced,
# not run): start worker processes in the background, each with its log, pass a Ctrl-C or TERM
# on to all of them once, and wait for every one.
#
# Sourcing turns on job control (set -m): each worker then runs in its own process group, so a
# Ctrl-C at the terminal reaches the workers once, from the trap below, not twice (a second
# interrupt could cut the chief's checkpoint save short).
set -m

worker_pids=()
worker_names=()
worker_logs=()

# start_worker NAME LOG COMMAND [ARGS...]: runs COMMAND (a program or a shell function, which
# may set the worker's environment and exec) in a background subshell, stdout and stderr to
# LOG, and prints "NAME: pid PID, log LOG".
start_worker() {
  local name=$1 log=$2
  shift 2
  (
    trap - INT TERM
    "$@"
  ) >"$log" 2>&1 &
  worker_pids+=($!)
  worker_names+=("$name")
  worker_logs+=("$log")
  echo "$name: pid $!, log $log"
}

# A Ctrl-C or TERM to the script is passed on to every worker as SIGINT (a chief saves a
# checkpoint); the script keeps waiting for them.
stop_workers() {
  echo "stopping workers ${worker_pids[*]}" >&2
  kill -INT "${worker_pids[@]}" 2>/dev/null || true  # some may have ended (and under set -e)
}
trap stop_workers INT TERM

# wait_for_workers: waits for every worker started, naming each that failed and its log.
# Returns 0 if all succeeded, else the exit status of the first that failed.
wait_for_workers() {
  local status=0 index code
  for index in "${!worker_pids[@]}"; do
    # A trapped signal (Ctrl-C, TERM) ends `wait` early with a status > 128: wait again while
    # the worker lives. Bash keeps an ended worker's status, so the last wait returns its own
    # (not that of the interrupted wait, when the worker ends in between).
    while kill -0 "${worker_pids[$index]}" 2>/dev/null; do
      wait "${worker_pids[$index]}" || true
    done
    code=0
    wait "${worker_pids[$index]}" || code=$?
    if [ "$code" -ne 0 ]; then
      echo "${worker_names[$index]} failed (exit status $code): see ${worker_logs[$index]}" >&2
      [ "$status" -ne 0 ] || status=$code
    fi
  done
  return "$status"
}
