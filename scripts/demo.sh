#!/usr/bin/env bash
# The standalone demo: installs what it needs, starts a real nats-server and SMTP server,
# serves two example job boards over loopback, runs every jobmatch role in one process on
# examples/, and shows the matches it found and the mails it sent.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
started=$(date +%s)
DEMO="$ROOT/.cache/demo"
BOARD_PORT=8089   # examples/sources.yaml points here
NATS_PORT=14222
SMTP_PORT=2525
API_PORT=9090     # the embedding API, /metrics and /openapi.json while the demo runs

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

say "installing nats-server, the model and an SMTP server (first run only)"
eval "$(scripts/setup.sh --env)"

say "building jobmatch (the first build takes several minutes on 2 cores)"
cargo build --bin jobmatch
JOBMATCH="$ROOT/target/debug/jobmatch"

for port in $BOARD_PORT $NATS_PORT $SMTP_PORT $API_PORT; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "demo: port $port is in use; stop what listens there and run again" >&2
    exit 1
  fi
done

rm -rf "$DEMO"
mkdir -p "$DEMO/board/v1/boards/acme" "$DEMO/board/v0/postings" "$DEMO/nats"
cp tests/fixtures/boards/greenhouse-acme.json "$DEMO/board/v1/boards/acme/jobs"
cp tests/fixtures/boards/lever-globex.json "$DEMO/board/v0/postings/globex"

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "demo: $2 did not start; see $DEMO/$2.log" >&2; exit 1
}

say "starting nats-server :$NATS_PORT, SMTP server :$SMTP_PORT, example boards :$BOARD_PORT"
"$JOBMATCH_NATS_SERVER" -a 127.0.0.1 -p $NATS_PORT -js -sd "$DEMO/nats" >"$DEMO/nats-server.log" 2>&1 & pids+=($!)
"$JOBMATCH_SMTPD_PYTHON" -m aiosmtpd -n -l 127.0.0.1:$SMTP_PORT -c aiosmtpd.handlers.Mailbox "$DEMO/mail" >"$DEMO/smtp.log" 2>&1 & pids+=($!)
python3 -m http.server --bind 127.0.0.1 $BOARD_PORT --directory "$DEMO/board" >"$DEMO/board.log" 2>&1 & pids+=($!)
wait_port $NATS_PORT nats-server; wait_port $SMTP_PORT smtp; wait_port $BOARD_PORT board

export JOBMATCH_NATS_URL="nats://127.0.0.1:$NATS_PORT"
export JOBMATCH_SMTP_URL="smtp://127.0.0.1:$SMTP_PORT"
export JOBMATCH_DATA_DIR="$DEMO/data"
export JOBMATCH_LISTEN="127.0.0.1:$API_PORT"

say "running: jobmatch all -f examples/   (log: .cache/demo/jobmatch.log)"
"$JOBMATCH" all -f examples/ >"$DEMO/jobmatch.log" 2>&1 & pids+=($!)

"$JOBMATCH" report --wait-idle --timeout 5m

say "mails the SMTP server received (.cache/demo/mail/new)"
python3 - "$DEMO/mail" <<'PY'
import email, email.header, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1], "new").iterdir()):
    msg = email.message_from_bytes(path.read_bytes())
    subject = " ".join(str(email.header.make_header(email.header.decode_header(msg["Subject"]))).split())
    print(f"  to {msg['To']:<24} {subject}")
PY
say "the embedding API: POST http://127.0.0.1:$API_PORT/api/embed (all endpoints: /openapi.json)"
python3 - "http://127.0.0.1:$API_PORT/api/embed" <<'PY'
import json, sys, urllib.request
text = "Senior Rust engineer, remote in Europe, Kubernetes and NATS"
request = urllib.request.Request(sys.argv[1], data=json.dumps({"text": text}).encode(),
                                 headers={"content-type": "application/json"})
answer = json.load(urllib.request.urlopen(request, timeout=30))
print(f"  {text!r}: {answer['dimension']} dimensions, {answer['tokens']} tokens, "
      f"[{', '.join(f'{x:.4f}' for x in answer['embedding'][:4])}, ...]")
PY
say "done in $(( $(date +%s) - started ))s"
