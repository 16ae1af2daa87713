#!/usr/bin/env bash
# Step 1 of the akv HAProxy example: settings, the emulator and agent, the HSM keys, their key
# references and certificates.
set -euo pipefail
# shellcheck disable=SC2034 # HELP is read by parse_common_args (examples/lib.sh)
HELP="Usage: setup.sh [--env-file FILE] [--hsm-name NAME] [--state-dir DIR] [--latency-ms N] [--force]

Writes the settings (default examples/haproxy/.env: HSM name, two free ports, a private state
directory), starts the local Managed HSM emulator and an akv agent for it ('bin/akv dev up'),
creates an RSA 3072 and an EC P-256 key in the HSM (when missing), and for each key writes a key
reference (STATE_DIR/certs/KIND.pem.key) and a self-signed certificate (STATE_DIR/certs/KIND.pem)
signed inside the HSM. Running it again keeps what exists.

  --hsm-name NAME   HSM name (default akvhaproxy)
  --state-dir DIR   where certificates, logs, the agent socket and HAProxy's files go
                    (default: a new private directory under /tmp)
  --latency-ms N    every emulator request takes N ms (a far-away HSM; default 0)
  --force           new settings (new ports and state directory) even if the file exists"
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
parse_common_args "$@"
set -- ${REST_ARGS[@]+"${REST_ARGS[@]}"}
hsm_name=akvhaproxy
state_dir=""
latency=""
force=no
while [ $# -gt 0 ]; do
  case "$1" in
    --hsm-name) need_value "$@"; hsm_name=$2; shift 2 ;;
    --state-dir) need_value "$@"; state_dir=$2; shift 2 ;;
    --latency-ms) need_value "$@"; latency=$2; shift 2 ;;
    --force) force=yes; shift ;;
    *) reject_unknown_args "$1" ;;
  esac
done
[[ "$hsm_name" =~ ^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$ ]] || die "'$hsm_name' is not a valid HSM name" "use 3-24 letters, digits and hyphens"
[ -z "$latency" ] || [[ "$latency" =~ ^[0-9]+$ ]] || die "--latency-ms must be a whole number of milliseconds, not '$latency'" "pass e.g. --latency-ms 10"
require_akv_cli

if [ "$force" = yes ] || [ ! -f "$ENV_FILE" ]; then
  [ -n "$state_dir" ] || state_dir=$(mktemp -d "${TMPDIR:-/tmp}/akv-haproxy.XXXXXX")
  case "$state_dir" in /*) ;; *) die "--state-dir must be an absolute path" "pass --state-dir /absolute/path" ;; esac
  rsa_port=$(free_port)
  ec_port=$(free_port)
  while [ "$ec_port" = "$rsa_port" ]; do ec_port=$(free_port); done
  mkdir -p "$(dirname "$ENV_FILE")"
  printf 'AKV_HSM_NAME=%s\nRSA_PORT=%s\nEC_PORT=%s\nSTATE_DIR=%s\nEMULATOR_LATENCY_MS=%s\nASYNC=on\nNBTHREAD=1\nTIMEOUT_CLIENT=30\nPROVIDER_LOG_LEVEL=debug\n' \
    "$hsm_name" "$rsa_port" "$ec_port" "$state_dir" "${latency:-0}" >"$ENV_FILE"
  say "wrote $ENV_FILE (hsm=$hsm_name, ports: RSA $rsa_port, EC $ec_port, state: $state_dir)"
fi
load_env
mkdir -p "$STATE_DIR" "$CERT_DIR" "$LOG_DIR"
chmod 0700 "$STATE_DIR"

# The emulator and an agent for it (starts only what is not running).
[ -z "$latency" ] || EMULATOR_LATENCY_MS=$latency
latency_args=()
[ "$EMULATOR_LATENCY_MS" = 0 ] || latency_args=(--latency-ms "$EMULATOR_LATENCY_MS")
dev_up "$DEV_DIR" "$AKV_HSM_NAME" ${latency_args[@]+"${latency_args[@]}"} >/dev/null
say "emulator and agent running (bin/akv dev up --dir $DEV_DIR --hsm-name $AKV_HSM_NAME${latency_args[*]:+ ${latency_args[*]}}; agent socket $AGENT_SOCKET)"
write_openssl_cnf

for kind in rsa ec; do
  uri=$(key_uri_of "$kind")
  if akv key show --hsm-name "$AKV_HSM_NAME" --name "haproxy-$kind" >/dev/null 2>&1; then
    say "key $uri: exists"
  elif [ "$kind" = rsa ]; then
    akv key create --hsm-name "$AKV_HSM_NAME" --name "haproxy-$kind" --kty RSA-HSM --size 3072 >/dev/null || die "could not create $uri" "see the message above"
    say "key $uri: created (RSA 3072)"
  else
    akv key create --hsm-name "$AKV_HSM_NAME" --name "haproxy-$kind" --kty EC-HSM --curve P-256 >/dev/null || die "could not create $uri" "see the message above"
    say "key $uri: created (EC P-256)"
  fi
  # HAProxy loads the key from the file beside the certificate: a key reference, not a key.
  akv keyref "$uri" --out "$CERT_DIR/$kind.pem.key" >/dev/null || die "could not write the key reference for $uri" "run: $AKV_BIN doctor $uri"
  if [ ! -s "$CERT_DIR/$kind.pem" ] || ! openssl_plain x509 -in "$CERT_DIR/$kind.pem" -noout -checkend 86400 >/dev/null 2>&1; then
    openssl_hsm req -new -x509 -key "$CERT_DIR/$kind.pem.key" -sha256 -days 825 -subj "/CN=localhost" \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -out "$CERT_DIR/$kind.pem.tmp" \
      || die "openssl req could not sign the certificate with $uri" "run: $AKV_BIN doctor $uri"
    mv -f "$CERT_DIR/$kind.pem.tmp" "$CERT_DIR/$kind.pem"
  fi
  say "$kind: certificate $CERT_DIR/$kind.pem, key reference $CERT_DIR/$kind.pem.key (signed in the HSM by $uri)"
done
say "next: ./start.sh"
