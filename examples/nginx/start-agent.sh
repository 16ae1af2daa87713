#!/usr/bin/env bash
# Step 2 of the akv nginx example: starts the akv agent (and, in emulator mode, the local Managed
# HSM emulator) in the background and makes sure the RSA and EC keys exist.
HELP="Usage: start-agent.sh [--env-file FILE] [--restart] [--skip-keys]

Starts what the HSM keys need, in the background, logging to STATE_DIR/logs:
  emulator mode: 'bin/akv emulator' on a free 127.0.0.1 port (keys kept in STATE_DIR/emulator)
  both modes:    'bin/akv agent' with STATE_DIR/akv.json; its socket is STATE_DIR/agent/agent.sock
then creates the RSA and EC keys named in the settings when they are missing (CREATE_KEYS=yes).
When run as root, the socket is opened to the group of NGINX_USER (www-data), whose nginx
workers sign, and to no one else. Running it again starts only what is not running.

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

emulator_url=""
emulator_ca=""
if [ "$AKV_MODE" = emulator ]; then
  mkdir -p "$EMULATOR_DIR"
  chmod 0700 "$EMULATOR_DIR"
  if [ -z "$(daemon_pid "$RUN_DIR/emulator.pid")" ]; then
    rm -f "$EMULATOR_DIR/emulator.json"
    say "starting the akv emulator (log: $LOG_DIR/emulator.log)"
    start_daemon "$RUN_DIR/emulator.pid" "$LOG_DIR/emulator.log" \
      "$AKV_BIN" emulator --listen 127.0.0.1:0 --state-dir "$EMULATOR_DIR"
    # (Just started: its command line may still be this script's until it execs, so only ask
    # whether it is alive.)
    emulator_ready() { [ -s "$EMULATOR_DIR/emulator.json" ] || { pid_alive "$(pid_from "$RUN_DIR/emulator.pid")" || return 2; false; }; }
    if ! wait_until 30 emulator_ready; then
      tail -n 20 "$LOG_DIR/emulator.log" >&2 || true
      die "the akv emulator did not start" "read $LOG_DIR/emulator.log"
    fi
  fi
  [ -s "$EMULATOR_DIR/emulator.json" ] || die "the emulator is running but $EMULATOR_DIR/emulator.json is missing" "run ./cleanup.sh, then ./start-agent.sh"
  emulator_url=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).url)' "$EMULATOR_DIR/emulator.json")
  emulator_ca="$EMULATOR_DIR/ca.pem"
  say "emulator: $emulator_url"
fi

# The agent configuration (docs/configuration.md).
socket_group=""
if is_root; then
  id "$NGINX_USER" >/dev/null 2>&1 || die "the nginx worker user '$NGINX_USER' does not exist" "set NGINX_USER in $ENV_FILE to the user nginx workers run as"
  socket_group=$(id -gn "$NGINX_USER")
  # Workers must be able to walk down to the socket directory.
  if ! runuser -u "$NGINX_USER" -- test -x "$STATE_DIR" 2>/dev/null; then
    die "user $NGINX_USER cannot enter $STATE_DIR (nginx workers would not reach the agent socket)" \
      "use a STATE_DIR whose parent directories others may traverse, e.g. ./setup-env.sh --force --state-dir /tmp/akv-nginx"
  fi
fi
config=$(
  MODE="$AKV_MODE" HSM="$AKV_HSM_NAME" SOCKET="$AGENT_SOCKET" GROUP="$socket_group" URL="$emulator_url" \
    CA="$emulator_ca" LOG="$AGENT_LOG" node -e '
    const e = process.env;
    const c = { socket: e.SOCKET };
    if (e.GROUP) c.socketGroup = e.GROUP;
    if (e.MODE === "emulator") {
      c.vaults = { [e.HSM]: { endpoint: e.URL, caFile: e.CA, disableChallengeResourceVerification: true } };
      c.credential = { type: "static", token: "akv-nginx-example" };
    } else {
      c.credential = { type: "default" };
    }
    c.log = { level: "info", file: e.LOG };
    console.log(JSON.stringify(c, null, 2));'
)
if [ ! -f "$AGENT_CONFIG" ] || [ "$config" != "$(cat "$AGENT_CONFIG")" ]; then
  printf '%s\n' "$config" >"$AGENT_CONFIG.tmp"
  chmod 0600 "$AGENT_CONFIG.tmp"
  mv -f "$AGENT_CONFIG.tmp" "$AGENT_CONFIG"
  # A running agent read the old file: start it again.
  if [ -n "$(daemon_pid "$RUN_DIR/agent.pid")" ]; then restart=yes; fi
fi

if [ "$restart" = yes ]; then
  say "stopping the running agent"
  stop_daemon "$RUN_DIR/agent.pid"
fi
if [ -z "$(daemon_pid "$RUN_DIR/agent.pid")" ]; then
  say "starting the akv agent (socket: $AGENT_SOCKET, log: $AGENT_LOG)"
  : >"$LOG_DIR/agent-stdout.log"
  start_daemon "$RUN_DIR/agent.pid" "$LOG_DIR/agent-stdout.log" \
    env -u AKV_AGENT_SOCKET -u AKV_LOG_FILE -u AKV_LOG_LEVEL AKV_CONFIG="$AGENT_CONFIG" \
    "$AKV_BIN" agent --config "$AGENT_CONFIG" --socket "$AGENT_SOCKET"
  # Ready when it printed its ready line (a socket file alone may be a stale one).
  agent_ready() {
    grep -q "^akv agent listening on" "$LOG_DIR/agent-stdout.log" && [ -S "$AGENT_SOCKET" ] \
      || { pid_alive "$(pid_from "$RUN_DIR/agent.pid")" || return 2; false; }
  }
  if ! wait_until 30 agent_ready; then
    tail -n 20 "$LOG_DIR/agent-stdout.log" >&2 || true
    die "the akv agent did not start" "read $LOG_DIR/agent-stdout.log and $AGENT_LOG"
  fi
fi
say "agent: running (pid $(pid_from "$RUN_DIR/agent.pid")), socket $AGENT_SOCKET"

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
