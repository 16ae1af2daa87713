#!/usr/bin/env bash
# Stops what start.sh (and setup.sh) started. Safe to run any number of times.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  cat <<EOF
Usage: $SCRIPT_NAME [--dir DIR] [--keep-hsm] [--clean]

Stops, in DIR (\$STATE_DIR, default tmp/grpc-demo in the repository): every sidecar (nginx) under
DIR/nginx/, the gRPC server, and (AKV_MODE=emulator) the HSM emulator and the agent.

  --keep-hsm   leave the emulator and the agent running (faster next start)
  --clean      also delete DIR (certificates, logs, the emulator's keys)

Only processes whose pid files are in DIR and whose command lines match are signalled.
EOF
}

keep_hsm=0 clean=0
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --dir) need_value "$@"; STATE_DIR=$2; shift 2 ;;
    --keep-hsm) keep_hsm=1; shift ;;
    --clean) clean=1; shift ;;
    *) usage_error "unknown option '$1'" ;;
  esac
done
if [ ! -d "$STATE_DIR" ]; then
  say "nothing to stop: $STATE_DIR does not exist"
  exit 0
fi
finish_settings

"$EXAMPLE_DIR/sidecar.sh" stop --all --dir "$STATE_DIR"
[ ! -d "$DEV_DIR" ] || akv_dev stop --dir "$DEV_DIR" --name grpc-server
rm -f "$STATE_DIR/demo.env"
if [ "$AKV_MODE" = emulator ] && [ "$keep_hsm" = 0 ] && [ -d "$DEV_DIR" ] && [ -f "$REPO_DIR/dist/src/cli/main.js" ]; then
  if (dev_down "$DEV_DIR"); then
    say "stopped the HSM emulator and the agent"
  else
    warn "the HSM emulator and the agent of $DEV_DIR may still run"
  fi
fi
if [ "$clean" = 1 ]; then
  case "$STATE_DIR" in / | "$HOME" | "$REPO_DIR" | "$EXAMPLE_DIR") die "refusing to delete $STATE_DIR" ;; esac
  rm -rf "$STATE_DIR"
  say "deleted $STATE_DIR"
fi
say "stopped"
