#!/usr/bin/env bash
# Step 1 of the akv nginx example: settings, the emulator and agent, the HSM keys, their key
# references and certificates.
set -euo pipefail
# shellcheck disable=SC2034 # HELP is read by parse_common_args (examples/lib.sh)
HELP="Usage: setup.sh [--env-file FILE] [--mode emulator|azure] [--hsm-name NAME]
                [--rsa-key NAME] [--ec-key NAME] [--state-dir DIR] [--workers N|auto]
                [--new-ports] [--skip-keys] [--force]

1. Writes the settings (default examples/nginx/.env) from .env.example: the HSM name, the RSA and
   EC key names, two free HTTPS ports on 127.0.0.1, and whether the keys live in the local akv
   emulator (default) or in a real Azure Managed HSM. Values already in the file are kept (the
   options given here win); empty values are filled in.
2. Starts what the keys need, in the background ('bin/akv dev'; only what is not running):
     emulator mode: 'bin/akv dev up --dir STATE_DIR/dev': the local Managed HSM emulator and an
                    akv agent for it (socket STATE_DIR/dev/akv/agent.sock)
     azure mode:    'bin/akv agent' alone, as the service 'akv-agent' of STATE_DIR/dev, with
                    STATE_DIR/akv.json (socket STATE_DIR/agent/agent.sock)
   Run as root, the socket is opened to the group of NGINX_USER (www-data), whose nginx workers
   sign, and to no one else.
3. Creates the RSA and EC keys when they are missing (CREATE_KEYS=yes).
4. For each key, with openssl going through akv_provider (every signature made by the HSM): a
   key-reference PEM (STATE_DIR/certs/KIND.keyref.pem, nginx < 1.29 reads it as its
   ssl_certificate_key), a CSR and a self-signed certificate (STATE_DIR/certs/KIND.crt) for
   localhost and 127.0.0.1. A certificate that already matches the HSM key is kept.

  --env-file FILE    settings file to write (also: AKV_NGINX_ENV)
  --mode MODE        emulator (default) or azure
  --hsm-name NAME    Managed HSM name (azure: NAME.managedhsm.azure.net)
  --rsa-key NAME     RSA key name       --ec-key NAME   EC key name
  --state-dir DIR    where certificates, logs, the agent socket and nginx files go
                     (default: a new private directory under /tmp)
  --workers N        nginx worker_processes (default auto)
  --new-ports        pick new free ports even if the file has some
  --skip-keys        stop after step 2 (create the keys yourself, then run setup.sh again)
  --force            start again from .env.example (drops edits) and issue new certificates"
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
parse_common_args "$@"
set -- ${REST_ARGS[@]+"${REST_ARGS[@]}"}

declare -A OVERRIDE=()
force=no
new_ports=no
skip_keys=no
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) need_value "$@"; OVERRIDE[AKV_MODE]=$2; shift 2 ;;
    --hsm-name) need_value "$@"; OVERRIDE[AKV_HSM_NAME]=$2; shift 2 ;;
    --rsa-key) need_value "$@"; OVERRIDE[RSA_KEY_NAME]=$2; shift 2 ;;
    --ec-key) need_value "$@"; OVERRIDE[EC_KEY_NAME]=$2; shift 2 ;;
    --state-dir) need_value "$@"; OVERRIDE[STATE_DIR]=$2; shift 2 ;;
    --workers) need_value "$@"; OVERRIDE[WORKER_PROCESSES]=$2; shift 2 ;;
    --new-ports) new_ports=yes; shift ;;
    --skip-keys) skip_keys=yes; shift ;;
    --force) force=yes; shift ;;
    *) reject_unknown_args "$1" ;;
  esac
done

# --- 1. the settings ---------------------------------------------------------------------------
example="$EXAMPLE_DIR/.env.example"
[ -f "$example" ] || die "$example is missing" "restore it from git: git checkout -- examples/nginx/.env.example"

# Values already in the settings file (kept unless --force).
declare -A CURRENT=()
if [ "$force" = no ] && [ -f "$ENV_FILE" ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in '' | '#'*) continue ;; esac
    CURRENT[${line%%=*}]=${line#*=}
  done <"$ENV_FILE"
fi

validate() {
  local key=$1 value=$2
  case "$key" in
    AKV_MODE) [[ "$value" =~ ^(emulator|azure)$ ]] || die "AKV_MODE must be 'emulator' or 'azure', not '$value'" "pass --mode emulator or --mode azure" ;;
    AKV_HSM_NAME) [[ "$value" =~ ^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$ ]] || die "'$value' is not a valid HSM name" "use 3-24 letters, digits and hyphens, starting with a letter" ;;
    RSA_KEY_NAME | EC_KEY_NAME) [[ "$value" =~ ^[A-Za-z0-9-]{1,127}$ ]] || die "'$value' is not a valid key name ($key)" "use letters, digits and hyphens" ;;
    RSA_PORT | EC_PORT) [ -z "$value" ] || { [[ "$value" =~ ^[0-9]+$ ]] && [ "$value" -ge 1 ] && [ "$value" -le 65535 ]; } || die "$key must be a port number, not '$value'" "leave it empty to get a free port" ;;
    WORKER_PROCESSES) [[ "$value" =~ ^(auto|[1-9][0-9]?)$ ]] || die "WORKER_PROCESSES must be 'auto' or a number, not '$value'" "pass --workers auto" ;;
    CREATE_KEYS) [[ "$value" =~ ^(yes|no)$ ]] || die "CREATE_KEYS must be 'yes' or 'no', not '$value'" "edit $ENV_FILE" ;;
    STATE_DIR) [ -z "$value" ] || [[ "$value" = /* ]] || die "STATE_DIR must be an absolute path, not '$value'" "pass --state-dir /absolute/path" ;;
  esac
}

out=""
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in
    '' | '#'*) out+="$line"$'\n'; continue ;;
  esac
  key=${line%%=*}
  value=${line#*=}
  if [ -n "${OVERRIDE[$key]+set}" ]; then
    value=${OVERRIDE[$key]}
  elif [ -n "${CURRENT[$key]+set}" ]; then
    value=${CURRENT[$key]}
  fi
  case "$key" in RSA_PORT | EC_PORT) [ "$new_ports" = no ] || value="" ;; esac
  validate "$key" "$value"
  case "$key" in
    RSA_PORT | EC_PORT)
      if [ -z "$value" ]; then
        value=$(free_port)
        while [ "$key" = EC_PORT ] && [ "$value" = "${RSA_PORT_CHOSEN:-}" ]; do value=$(free_port); done
      fi
      [ "$key" = RSA_PORT ] && RSA_PORT_CHOSEN=$value
      ;;
    STATE_DIR)
      if [ -z "$value" ]; then
        value=$(mktemp -d "${TMPDIR:-/tmp}/akv-nginx.XXXXXX")
      fi
      ;;
  esac
  out+="$key=$value"$'\n'
  printf -v "NEW_$key" '%s' "$value"
done <"$example"

mkdir -p "$NEW_STATE_DIR"
# Private to the user, but traversable: nginx workers (www-data when started as root) reach the
# agent socket inside it, in a directory the agent opens to their group only.
chmod 0711 "$NEW_STATE_DIR"
touch "$NEW_STATE_DIR/.akv-nginx-state"

mkdir -p "$(dirname "$ENV_FILE")"
printf '%s' "$out" >"$ENV_FILE.tmp"
mv -f "$ENV_FILE.tmp" "$ENV_FILE"

say "wrote $ENV_FILE"
say "  mode=$NEW_AKV_MODE hsm=$NEW_AKV_HSM_NAME keys=$NEW_RSA_KEY_NAME (RSA $NEW_RSA_KEY_SIZE), $NEW_EC_KEY_NAME (EC $NEW_EC_CURVE)"
say "  ports: RSA https://localhost:$NEW_RSA_PORT  EC https://localhost:$NEW_EC_PORT"
say "  state: $NEW_STATE_DIR"

# --- 2. the emulator and the agent -------------------------------------------------------------
load_env
require_akv_cli
mkdir -p "$LOG_DIR" "$DEV_DIR"
chmod 0700 "$LOG_DIR"
# The agent socket's group when nginx workers drop to NGINX_USER (run as root); else empty.
socket_group=$(worker_socket_group)

if [ "$AKV_MODE" = emulator ]; then
  group_args=()
  if [ -n "$socket_group" ]; then group_args=(--socket-group "$socket_group"); fi
  exports=$(dev_up "$DEV_DIR" "$AKV_HSM_NAME" ${group_args[@]+"${group_args[@]}"})
  # dev up prints the exports the example relies on: the paths lib/common.sh expects.
  grep -qxF "export AKV_AGENT_SOCKET='$AGENT_SOCKET'" <<<"$exports" \
    || die "bin/akv dev up put the agent socket elsewhere than $AGENT_SOCKET" "report this bug; its exports were: $exports"
  say "emulator and agent running (bin/akv dev up --dir $DEV_DIR --hsm-name $AKV_HSM_NAME${socket_group:+ --socket-group $socket_group}; logs $DEV_DIR/emulator.log, $AGENT_LOG)"
  say "agent socket $AGENT_SOCKET"
else
  # The agent configuration (docs/configuration.md): the real HSM's endpoint, DefaultAzureCredential.
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
    akv_dev stop --dir "$DEV_DIR" --name akv-agent --quiet
  fi
  if ! akv_dev status --dir "$DEV_DIR" --name akv-agent >/dev/null 2>&1; then
    akv_dev start --dir "$DEV_DIR" --name akv-agent --ready-log "akv agent listening on" --quiet -- \
      env -u AKV_AGENT_SOCKET -u AKV_LOG_FILE -u AKV_LOG_LEVEL AKV_CONFIG="$AGENT_CONFIG" \
      "$AKV_BIN" agent --config "$AGENT_CONFIG" --socket "$AGENT_SOCKET" ||
      die "the akv agent did not start" "read the message above, and $AGENT_LOG"
  fi
  say "agent running (bin/akv dev start --dir $DEV_DIR --name akv-agent; log $AGENT_LOG), socket $AGENT_SOCKET"
  say "  azure: the agent uses DefaultAzureCredential (az login, managed identity, AZURE_CLIENT_ID/...) or AZURE_CLI_ACCESS_TOKEN"
fi
if [ "$skip_keys" = yes ]; then
  say "next: create the keys (bin/akv key create ...), then ./setup.sh again for the certificates"
  exit 0
fi

# --- 3. the keys -------------------------------------------------------------------------------
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
ensure_key rsa
ensure_key ec

# --- 4. key references and certificates --------------------------------------------------------
require_commands openssl
mkdir -p "$CERT_DIR"
chmod 0755 "$CERT_DIR"
write_openssl_cnf

# Extensions of the issued certificate (the SAN is copied from the CSR).
cat >"$CERT_DIR/cert-extensions.cnf" <<'EOF'
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, digitalSignature, keyCertSign
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
EOF

# Prints the DER public key of a PEM certificate or public key, as hex, for comparison.
pubkey_fingerprint() {
  if [ "$1" = cert ]; then
    openssl_plain x509 -in "$2" -noout -pubkey | openssl_plain pkey -pubin -outform DER | openssl_plain dgst -sha256 -r | cut -d' ' -f1
  else
    openssl_plain pkey -pubin -in "$2" -outform DER | openssl_plain dgst -sha256 -r | cut -d' ' -f1
  fi
}

issue() {
  local kind=$1 uri label
  uri=$(key_uri_of "$kind")
  label=$(label_of "$kind")
  local keyref="$CERT_DIR/$kind.keyref.pem" pub="$CERT_DIR/$kind.hsm-pub.pem"
  local csr="$CERT_DIR/$kind.csr" crt="$CERT_DIR/$kind.crt"

  akv keyref "$uri" --out "$keyref.tmp" >/dev/null 2>"$LOG_DIR/keyref.err" || { cat "$LOG_DIR/keyref.err" >&2; false; } || die "bin/akv keyref $uri failed" "see the message above; is the key in the HSM? (./setup.sh creates it)"
  chmod 0644 "$keyref.tmp"
  mv -f "$keyref.tmp" "$keyref"

  # The public key as the HSM has it, read through the provider (agent DESCRIBE).
  openssl_hsm pkey -in "$uri" -pubout -out "$pub.tmp" 2>"$LOG_DIR/openssl.err" || {
    cat "$LOG_DIR/openssl.err" >&2
    die "openssl could not read $uri through akv_provider" "run: $AKV_BIN doctor $uri"
  }
  mv -f "$pub.tmp" "$pub"

  if [ "$force" = no ] && [ -s "$crt" ] && openssl_plain x509 -in "$crt" -noout -checkend 86400 >/dev/null 2>&1 \
    && [ "$(pubkey_fingerprint cert "$crt")" = "$(pubkey_fingerprint pub "$pub")" ]; then
    say "$label: $crt already matches $uri (kept)"
    return
  fi

  openssl_hsm req -new -key "$uri" -sha256 \
    -subj "/O=akv nginx example/OU=$label key in HSM $AKV_HSM_NAME/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -out "$csr" 2>"$LOG_DIR/openssl.err" || {
    cat "$LOG_DIR/openssl.err" >&2
    die "openssl req could not make a CSR with $uri" "run: $AKV_BIN doctor $uri"
  }
  openssl_plain req -in "$csr" -verify -noout >/dev/null 2>&1 || die "the CSR signed by $uri does not verify" "run: $AKV_BIN doctor $uri"
  say "$label: CSR $csr (signed by $uri, verified)"

  openssl_hsm x509 -req -in "$csr" -key "$uri" -sha256 -days 825 -set_serial "0x$(openssl_plain rand -hex 16)" \
    -copy_extensions copyall -extfile "$CERT_DIR/cert-extensions.cnf" -out "$crt.tmp" 2>"$LOG_DIR/openssl.err" || {
    cat "$LOG_DIR/openssl.err" >&2
    die "openssl x509 could not sign the certificate with $uri" "run: $AKV_BIN doctor $uri"
  }
  openssl_plain verify -CAfile "$crt.tmp" "$crt.tmp" >/dev/null 2>&1 || die "the certificate signed by $uri does not verify" "run: $AKV_BIN doctor $uri"
  [ "$(pubkey_fingerprint cert "$crt.tmp")" = "$(pubkey_fingerprint pub "$pub")" ] || die "the certificate's public key is not the HSM key's" "report this bug"
  chmod 0644 "$crt.tmp"
  mv -f "$crt.tmp" "$crt"
  say "$label: certificate $crt (signed by $uri, verified; $(openssl_plain x509 -in "$crt" -noout -enddate))"
}

issue rsa
issue ec
say "next: ./start.sh"
