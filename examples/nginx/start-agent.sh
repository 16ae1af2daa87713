#!/usr/bin/env bash
# Step 2 of the akv nginx example: starts the akv agent (and, in emulator mode, the local Managed
# HSM emulator) in the background and makes sure the RSA and EC keys exist.
set -euo pipefail
# shellcheck disable=SC2034 # HELP is read by parse_common_args (examples/lib.sh)
HELP="Usage: start-agent.sh [--env-file FILE] [--restart] [--skip-keys]

Starts what the HSM keys need, in the background:
  emulator mode: 'bin/akv dev up --dir STATE_DIR/dev --hsm-name AKV_HSM_NAME': the local Managed
                 HSM emulator and an akv agent configured for it (config STATE_DIR/dev/akv.json,
                 socket STATE_DIR/dev/akv/agent.sock, logs STATE_DIR/dev/{emulator,agent}.log)
  azure mode:    'bin/akv agent' alone, with STATE_DIR/akv.json (socket STATE_DIR/agent/agent.sock,
                 log STATE_DIR/logs/agent.log)
then creates the RSA and EC keys named in the settings when they are missing (CREATE_KEYS=yes).
When run as root, the socket is opened to the group of NGINX_USER (www-data), whose nginx
workers sign, and to no one else (emulator mode: 'bin/akv dev up --socket-group'). Running it
again starts only what is not running.

  --restart     stop a running agent first and start it again (the emulator keeps running)
  --skip-keys   do not look at the keys (create them yourself: bin/akv key create ...)"
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
parse_common_args "$@"
set -- ${REST_ARGS[@]+"${REST_ARGS[@]}"}
restart=no
skip_keys=no
while [ $# -gt 0 ]; do
  case "$1" in
    --restart) restart=yes; shift ;;
    --skip-keys) skip_keys=yes; shift ;;
    *) reject_unknown_args "$1" ;;
  esac
done
load_env
require_akv_cli
mkdir -p "$LOG_DIR" "$RUN_DIR"
chmod 0700 "$RUN_DIR" "$LOG_DIR"
# The agent socket's group when nginx workers drop to NGINX_USER (run as root); else empty.
socket_group=$(worker_socket_group)

# json_field FILE a.b: the value at that path in a JSON file (dev up's DEV_DIR/dev.json).
json_field() {
  node -e 'let v = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    for (const k of process.argv[2].split(".")) v = v?.[k];
    console.log(v ?? "?")' "$1" "$2"
}

start_with_dev_up() {
  if [ "$restart" = yes ] && [ -n "$(daemon_pid "$AGENT_PID_FILE")" ]; then
    say "stopping the running agent"
    stop_daemon "$AGENT_PID_FILE"
  fi
  local group_args=()
  if [ -n "$socket_group" ]; then group_args=(--socket-group "$socket_group"); fi
  say "emulator and agent: bin/akv dev up --dir $DEV_DIR --hsm-name $AKV_HSM_NAME${socket_group:+ --socket-group $socket_group} (starts what is not running; logs: $DEV_DIR/emulator.log, $AGENT_LOG)"
  local exports
  exports=$(dev_up "$DEV_DIR" "$AKV_HSM_NAME" ${group_args[@]+"${group_args[@]}"})
  # dev up prints the exports the example relies on: the paths lib/common.sh expects.
  grep -qxF "export AKV_AGENT_SOCKET='$AGENT_SOCKET'" <<<"$exports" \
    || die "bin/akv dev up put the agent socket elsewhere than $AGENT_SOCKET" "report this bug; its exports were: $exports"
  say "emulator: $(json_field "$DEV_DIR/dev.json" emulator.url)"
  say "agent: running (pid $(json_field "$DEV_DIR/dev.json" agent.pid)), socket $AGENT_SOCKET"
}

start_own_agent() {
  # The agent configuration (docs/configuration.md): the real HSM's endpoint, DefaultAzureCredential.
  local config
  config=$(
    SOCKET="$AGENT_SOCKET" GROUP="$socket_group" LOG="$AGENT_LOG" node -e '
      const e = process.env;
      const c = { socket: e.SOCKET };
      if (e.GROUP) c.socketGroup = e.GROUP;
      c.credential = { type: "default" };
      c.log = { level: "info", file: e.LOG };
      console.log(JSON.stringify(c, null, 2));'
  )
  if [ ! -f "$AGENT_CONFIG" ] || [ "$config" != "$(cat "$AGENT_CONFIG")" ]; then
    printf '%s\n' "$config" >"$AGENT_CONFIG.tmp"
    chmod 0600 "$AGENT_CONFIG.tmp"
    mv -f "$AGENT_CONFIG.tmp" "$AGENT_CONFIG"
    # A running agent read the old file: start it again.
    if [ -n "$(daemon_pid "$AGENT_PID_FILE")" ]; then restart=yes; fi
  fi

  if [ "$restart" = yes ]; then
    say "stopping the running agent"
    stop_daemon "$AGENT_PID_FILE"
  fi
  if [ -z "$(daemon_pid "$AGENT_PID_FILE")" ]; then
    say "starting the akv agent (socket: $AGENT_SOCKET, log: $AGENT_LOG)"
    : >"$LOG_DIR/agent-stdout.log"
    start_daemon "$AGENT_PID_FILE" "$LOG_DIR/agent-stdout.log" \
      env -u AKV_AGENT_SOCKET -u AKV_LOG_FILE -u AKV_LOG_LEVEL AKV_CONFIG="$AGENT_CONFIG" \
      "$AKV_BIN" agent --config "$AGENT_CONFIG" --socket "$AGENT_SOCKET"
    # Ready when it printed its ready line (a socket file alone may be a stale one).
    agent_ready() {
      { grep -q "^akv agent listening on" "$LOG_DIR/agent-stdout.log" && [ -S "$AGENT_SOCKET" ]; } \
        || { [ -n "$(daemon_pid "$AGENT_PID_FILE")" ] || return 2; false; }
    }
    if ! wait_until 30 agent_ready; then
      tail -n 20 "$LOG_DIR/agent-stdout.log" >&2 || true
      die "the akv agent did not start" "read $LOG_DIR/agent-stdout.log and $AGENT_LOG"
    fi
  fi
  say "agent: running (pid $(daemon_pid "$AGENT_PID_FILE")), socket $AGENT_SOCKET"
}

if [ "$AKV_MODE" = emulator ]; then start_with_dev_up; else start_own_agent; fi

# The keys.
ensure_key() {
  local kind=$1 name
  name=$(key_name_of "$kind")
  if akv key show --hsm-name "$AKV_HSM_NAME" --name "$name" >/dev/null 2>"$LOG_DIR/key-show.err"; then
    rm -f "$LOG_DIR/key-show.err"
    say "key $(key_uri_of "$kind"): exists"
    return
  fi
  if [ "$CREATE_KEYS" != yes ]; then
    cat "$LOG_DIR/key-show.err" >&2
    die "key $(key_uri_of "$kind") is not usable and CREATE_KEYS=no" "create it (az keyvault key create --hsm-name $AKV_HSM_NAME --name $name ...) or set CREATE_KEYS=yes in $ENV_FILE"
  fi
  if [ "$kind" = rsa ]; then
    akv key create --hsm-name "$AKV_HSM_NAME" --name "$name" --kty RSA-HSM --size "$RSA_KEY_SIZE" >/dev/null \
      || die "could not create the RSA key $name" "see the message above"
    say "key $(key_uri_of "$kind"): created (RSA $RSA_KEY_SIZE)"
  else
    akv key create --hsm-name "$AKV_HSM_NAME" --name "$name" --kty EC-HSM --curve "$EC_CURVE" >/dev/null \
      || die "could not create the EC key $name" "see the message above"
    say "key $(key_uri_of "$kind"): created (EC $EC_CURVE)"
  fi
}
if [ "$skip_keys" = no ]; then
  ensure_key rsa
  ensure_key ec
fi
say "next: ./generate-cert.sh"
