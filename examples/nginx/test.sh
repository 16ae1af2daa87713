#!/usr/bin/env bash
# Step 3 of the akv nginx example: checks, as a client, that nginx serves TLS with the HSM keys.
set -euo pipefail
# shellcheck disable=SC2034 # HELP is read by parse_common_args (examples/lib.sh)
HELP="Usage: test.sh [--env-file FILE]

For the RSA server and the EC server, checks (and fails on):
  - HTTPS answers on / (names the protocol and cipher) and on /health (JSON), with curl
  - a TLS 1.3 and a TLS 1.2 handshake that verify the certificate (openssl s_client)
  - the served certificate's public key is the HSM key's public key (read through akv_provider)
  - the agent's log shows a signature by that HSM key for these handshakes
  - a client that does not trust the certificate (system CAs only) is refused
  - gnutls-cli (a second TLS implementation) completes a handshake, when it is installed
Prints one PASS/FAIL line per check and exits non-zero when any check failed."
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
parse_common_args "$@"
reject_unknown_args ${REST_ARGS[@]+"${REST_ARGS[@]}"}
load_env
require_commands curl openssl
nginx_running || die "nginx is not running" "run ./start.sh"

passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

pass() { printf 'PASS  %-3s %s\n' "$1" "$2"; passed=$((passed + 1)); }
fail() {
  printf 'FAIL  %-3s %s\n' "$1" "$2"
  if [ -s "$tmp/err" ]; then sed 's/^/        /' "$tmp/err" | tail -n 5; fi
  failed=$((failed + 1))
}

signatures() { node "$EXAMPLE_DIR/lib/agent-log.mjs" "$AGENT_LOG" "$AKV_HSM_NAME" "$1"; }

# curl against 127.0.0.1 with the name localhost (the certificate's name), never via a proxy.
https_get() {
  local port=$1 ca=$2 path=$3
  curl --silent --show-error --fail --noproxy '*' --max-time 20 --resolve "localhost:$port:127.0.0.1" \
    ${ca:+--cacert "$ca"} "https://localhost:$port$path"
}

# One handshake with openssl s_client; writes its report to $tmp/handshake.
handshake() {
  local port=$1 version=$2 ca=$3
  openssl_plain s_client -connect "127.0.0.1:$port" -servername localhost "-$version" -CAfile "$ca" \
    -verify_return_error -verify_hostname localhost -brief </dev/null >"$tmp/handshake" 2>&1
}

check_server() {
  local kind=$1 label port key uri crt before after body expected_json
  label=$(label_of "$kind")
  port=$(port_of "$kind")
  key=$(key_name_of "$kind")
  uri=$(key_uri_of "$kind")
  crt="$CERT_DIR/$kind.crt"
  : >"$tmp/err"
  before=$(signatures "$key")
  local handshakes=0

  if body=$(https_get "$port" "$crt" / 2>"$tmp/err") && [[ "$body" == *"protocol=TLSv1."* ]] && [[ "$body" == *"cipher="* ]]; then
    pass "$label" "GET https://localhost:$port/ -> $(printf '%s' "$body" | grep -o 'protocol=[^ ]* cipher=[^ ]*')"
  else
    fail "$label" "GET https://localhost:$port/ did not answer with the protocol and cipher (got: ${body:-nothing})"
  fi
  handshakes=$((handshakes + 1))

  expected_json="{\"status\":\"healthy\",\"ssl\":true,\"hsm\":\"$AKV_HSM_NAME\",\"key\":\"$key\",\"type\":\"$label\"}"
  : >"$tmp/err"
  if body=$(https_get "$port" "$crt" /health 2>"$tmp/err") && [ "$(printf '%s' "$body" | tr -d '\n')" = "$expected_json" ]; then
    pass "$label" "GET /health -> $expected_json"
  else
    fail "$label" "GET /health answered '${body:-nothing}', expected $expected_json"
  fi
  handshakes=$((handshakes + 1))

  local version
  for version in tls1_3 tls1_2; do
    : >"$tmp/err"
    if handshake "$port" "$version" "$crt" && grep -q "^Protocol version: TLSv1\.${version#tls1_}" "$tmp/handshake" \
      && grep -q '^Verification: OK' "$tmp/handshake"; then
      pass "$label" "openssl s_client -${version}: $(grep -m1 '^Protocol version' "$tmp/handshake" | cut -d' ' -f3), $(grep -m1 '^Ciphersuite' "$tmp/handshake" | cut -d' ' -f2), certificate verified"
    else
      cp "$tmp/handshake" "$tmp/err"
      fail "$label" "openssl s_client -${version} handshake failed"
    fi
    handshakes=$((handshakes + 1))
  done

  # The certificate nginx serves against the HSM key's public key.
  : >"$tmp/err"
  openssl_plain s_client -connect "127.0.0.1:$port" -servername localhost </dev/null 2>>"$tmp/err" \
    | sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' >"$tmp/served.pem" || true
  handshakes=$((handshakes + 1))
  : >"$tmp/err"
  local served hsm_pub
  served=$(openssl_plain x509 -in "$tmp/served.pem" -noout -pubkey 2>>"$tmp/err" | openssl_plain pkey -pubin -outform DER 2>>"$tmp/err" | openssl_plain dgst -sha256 -r | cut -d' ' -f1) || served=""
  hsm_pub=$(openssl_hsm pkey -in "$uri" -pubout 2>>"$tmp/err" | openssl_plain pkey -pubin -outform DER 2>>"$tmp/err" | openssl_plain dgst -sha256 -r | cut -d' ' -f1) || hsm_pub=""
  if [ -s "$tmp/served.pem" ] && [ -n "$hsm_pub" ] && [ "$served" = "$hsm_pub" ] && ! grep -q . "$tmp/err"; then
    pass "$label" "served certificate's public key = public key of $uri (sha256 ${hsm_pub:0:16}...)"
  else
    fail "$label" "served certificate's public key (${served:0:16}) is not the HSM key's (${hsm_pub:0:16})"
  fi

  # Each full handshake above made one signature with the server's key: the agent logged them.
  # (Its log is written asynchronously: give it a moment.)
  logged() { after=$(signatures "$key"); [ $((after - before)) -ge "$handshakes" ]; }
  after=$before
  if wait_until 10 logged; then
    pass "$label" "agent log: $((after - before)) signatures by $uri for $handshakes handshakes (the key was used in the HSM)"
  else
    : >"$tmp/err"
    fail "$label" "agent log ($AGENT_LOG) shows $((after - before)) signatures by $uri, expected at least $handshakes"
  fi

  # A client that does not trust our certificate must refuse the server (curl: exit 60).
  local status=0
  : >"$tmp/err"
  https_get "$port" "" / >/dev/null 2>"$tmp/err" || status=$?
  if [ "$status" -eq 60 ]; then
    pass "$label" "a client trusting only the system CAs refuses the server (curl exit 60: $(grep -o 'SSL certificate problem: [^)]*' "$tmp/err" | head -n1))"
  else
    fail "$label" "a client that does not trust the certificate got curl status $status, expected 60"
  fi

  if command -v gnutls-cli >/dev/null 2>&1; then
    : >"$tmp/err"
    if gnutls-cli --x509cafile "$crt" --port "$port" 127.0.0.1 </dev/null >"$tmp/gnutls" 2>&1 \
      && grep -q 'Handshake was completed' "$tmp/gnutls"; then
      pass "$label" "gnutls-cli handshake verified ($(grep -m1 -o 'Description: [^\n]*' "$tmp/gnutls" | cut -d' ' -f2-))"
    else
      cp "$tmp/gnutls" "$tmp/err"
      fail "$label" "gnutls-cli could not complete a verified handshake"
    fi
  fi
}

check_server rsa
check_server ec
printf '%s: %d passed, %d failed\n' "$SCRIPT_NAME" "$passed" "$failed"
[ "$failed" -eq 0 ]
