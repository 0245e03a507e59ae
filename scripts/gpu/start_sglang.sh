#!/usr/bin/env bash
# Start SGLang 0.5.17 from the project's archive (scripts/gpu/build_sglang_archive.sh) on a GPU host and
# print the server's process-group id once it is ready; the server keeps running (stop: kill -- -PGID).
#
#   scripts/gpu/start_sglang.sh ARCHIVE.tar.xz MODEL_DIR PORT LOGFILE [SGLANG FLAGS...]
#
# The archive is unpacked once into $SITE (default ~/sglang-site; concurrent starts wait for one another).
# Flags given here come after the defaults below, and SGLang's last value wins, so any default can be
# overridden (e.g. --mem-fraction-static 0.1 to let several servers share one GPU).
#
# Defaults, for the project's tiny fixture checkpoints on a Hopper GPU with this archive (no FA3 library):
#   --attention-backend torch_native --sampling-backend pytorch --disable-cuda-graph
#   --mem-fraction-static 0.3 --context-length 2048
#
# Environment:
#   SITE      where the archive is unpacked (default ~/sglang-site)
#   PYTHON    interpreter of the GPU image (default python3; needs torch 2.11)
#   READY     "health" (default): return when GET /health answers 200;
#             "pool": return as soon as the KV-cache pool is allocated (SGLang's scheduler logs
#             max_total_num_tokens=...), so that the next server on the same GPU sizes its pool from
#             what this one left free (or when /health answers, if that comes first); wait for
#             /health yourself afterwards
#   WAIT_S    seconds to wait (default 400)
# Exit status: 0 ready (PGID on stdout), 2 unpack failed, 3 server exited, 4 not ready in time.
set -u
ARCHIVE=${1:?usage: start_sglang.sh ARCHIVE MODEL_DIR PORT LOGFILE [flags...]}
MODEL=${2:?model directory}
PORT=${3:?port}
LOG=${4:?log file}
shift 4
SITE=${SITE:-$HOME/sglang-site}
PYTHON=${PYTHON:-python3}
READY=${READY:-health}
WAIT_S=${WAIT_S:-400}

mkdir -p "$(dirname "$SITE")"
(
  flock 9
  if [ ! -f "$SITE/.done" ]; then
    rm -rf "$SITE" && mkdir -p "$SITE" && tar -C "$SITE" -xJf "$ARCHIVE" && touch "$SITE/.done"
  fi
) 9>"$SITE.lock" || { echo "could not unpack $ARCHIVE into $SITE" >&2; exit 2; }
[ -f "$SITE/.done" ] || { echo "could not unpack $ARCHIVE into $SITE" >&2; exit 2; }

export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
setsid "$PYTHON" -m sglang.launch_server --model-path "$MODEL" --host 127.0.0.1 --port "$PORT" \
  --attention-backend torch_native --sampling-backend pytorch --disable-cuda-graph \
  --mem-fraction-static 0.3 --context-length 2048 "$@" >"$LOG" 2>&1 &
PID=$!

healthy() {
  "$PYTHON" - "$PORT" <<'PY' 2>/dev/null
import sys, urllib.request
try:
    ok = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=3).status == 200
except Exception:
    ok = False
sys.exit(0 if ok else 1)
PY
}

deadline=$(( $(date +%s) + WAIT_S ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "SGLang exited during start-up; last lines of $LOG:" >&2; tail -40 "$LOG" >&2; exit 3
  fi
  if [ "$READY" = pool ] && grep -q "max_total_num_tokens=" "$LOG" 2>/dev/null; then echo "$PID"; exit 0; fi
  if healthy; then echo "$PID"; exit 0; fi
  sleep 1
done
echo "SGLang not ready after $WAIT_S s; last lines of $LOG:" >&2; tail -40 "$LOG" >&2
kill -- -"$PID" 2>/dev/null
exit 4
