#!/usr/bin/env bash
# Step 3 of the akv HAProxy example: checks both frontends as a client.
set -euo pipefail
# shellcheck disable=SC2034 # HELP is read by parse_common_args (examples/lib.sh)
HELP="Usage: test.sh [--env-file FILE]

For the RSA and the EC frontend: an HTTPS request with curl, TLS 1.3 and TLS 1.2 handshakes with
openssl s_client verified against the certificate, the served certificate's public key compared
with the HSM key's, and the provider's log read for the signatures these handshakes made in the
HSM and (ssl-mode-async on, log level debug) for the async job each one paused. Exits non-zero
when a check fails."
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"
parse_common_args "$@"
set -- ${REST_ARGS[@]+"${REST_ARGS[@]}"}
reject_unknown_args "$@"
load_env
require_commands curl openssl
haproxy_running || die "haproxy is not running" "run ./start.sh"

passed=0
failed=0
pass() { printf 'PASS  %s\n' "$*"; passed=$((passed + 1)); }
fail() { printf 'FAIL  %s\n' "$*"; failed=$((failed + 1)); }
count() { grep -c -- "$1" "$PROVIDER_LOG" 2>/dev/null || true; }
spki_hash() { openssl_plain pkey -pubin -outform DER 2>/dev/null | openssl_plain dgst -sha256 -r | cut -c1-16; }

for kind in rsa ec; do
  label=$(printf '%-3s' "$(printf '%s' "$kind" | tr '[:lower:]' '[:upper:]')")
  port=$(port_of "$kind")
  uri=$(key_uri_of "$kind")
  signs_before=$(count "op=sign key=$uri")
  pauses_before=$(count "async: job paused")
  in_job_before=$(count "async: agent request from inside an async job")

  body=$(curl -sS --max-time 20 --cacert "$CERT_DIR/$kind.pem" "https://localhost:$port/" 2>&1) || true
  if [[ "$body" == "ok key=$kind protocol=TLSv1.3"* ]]; then pass "$label curl https://localhost:$port/ -> $body"; else fail "$label curl https://localhost:$port/ -> $body"; fi

  for version in tls1_3 tls1_2; do
    out=$(openssl_plain s_client -connect "127.0.0.1:$port" -servername localhost "-$version" -CAfile "$CERT_DIR/$kind.pem" \
      -verify_hostname localhost -verify_return_error -brief </dev/null 2>&1) || true
    proto=$(sed -n 's/^Protocol version: //p' <<<"$out")
    suite=$(sed -n 's/^Ciphersuite: //p' <<<"$out")
    if grep -q '^Verification: OK' <<<"$out" && [ -n "$proto" ]; then
      pass "$label openssl s_client -$version: $proto, $suite, certificate verified"
    else
      fail "$label openssl s_client -$version: $(tail -n 2 <<<"$out" | tr '\n' ' ')"
    fi
  done

  served=$(openssl_plain s_client -connect "127.0.0.1:$port" -servername localhost </dev/null 2>/dev/null | openssl_plain x509 -noout -pubkey 2>/dev/null | spki_hash)
  hsm=$(openssl_hsm pkey -in "$CERT_DIR/$kind.pem.key" -pubout 2>/dev/null | spki_hash)
  if [ -n "$served" ] && [ "$served" = "$hsm" ]; then pass "$label served certificate's public key = public key of $uri (sha256 $served...)"; else fail "$label served public key ($served) differs from $uri's ($hsm)"; fi

  signs=$(($(count "op=sign key=$uri") - signs_before))
  if [ "$signs" -ge 4 ]; then pass "$label provider log: $signs signatures by $uri in the HSM for 4 handshakes"; else fail "$label provider log: $signs signatures by $uri for 4 handshakes (see $PROVIDER_LOG)"; fi
  pauses=$(($(count "async: job paused") - pauses_before))
  in_job=$(($(count "async: agent request from inside an async job") - in_job_before))
  if [ "$PROVIDER_LOG_LEVEL" != debug ]; then
    say "($label: PROVIDER_LOG_LEVEL=$PROVIDER_LOG_LEVEL: the async pauses are not logged, not checked)"
  elif [ "$ASYNC" = on ]; then
    # A job pauses when the answer is not there yet, which is always the case but for a very
    # fast HSM on a loaded machine: every signature must run in a job, and jobs must pause.
    if [ "$in_job" -eq "$signs" ] && [ "$pauses" -gt 0 ]; then
      pass "$label ssl-mode-async: all $signs signatures ran in async jobs, which paused $pauses times for the HSM (HAProxy's thread never waited)"
    else
      fail "$label ssl-mode-async: $in_job of $signs signatures ran in async jobs, $pauses pauses (see $PROVIDER_LOG)"
    fi
  else
    if [ "$pauses" -eq 0 ] && [ "$in_job" -eq 0 ]; then pass "$label ssl-mode-async off: no job paused (HAProxy's thread waited for each signature)"; else fail "$label ssl-mode-async off but $pauses jobs paused"; fi
  fi
done
say "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
