# Sourced by every benchmark script after it has changed to the repository
# root: holds a lock for the rest of the script, so that two benchmarks never
# run at once on this machine (each would take the other's cores and both
# tables would be wrong). A second benchmark waits for the first, and says so.
# The lock file: ${PERCEPT_BENCH_LOCK:-/tmp/percept-bench.lock}.
exec 9>"${PERCEPT_BENCH_LOCK:-/tmp/percept-bench.lock}"
if ! flock -n 9; then
  echo "$(basename "$0"): another benchmark is running; waiting for it to finish" >&2
  flock 9
fi
