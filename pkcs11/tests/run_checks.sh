#!/bin/sh
# Runs the module's C tests twice: the plain test binary with the plain module, then the
# AddressSanitizer + UBSan binary with the ASan module. Arguments: BIN MODULE BIN_ASAN MODULE_ASAN.
# Prints a closing `pkcs11-c-tests: N passed, N failed` over both runs.
total_pass=0
total_fail=0
status=0
while [ $# -ge 2 ]; do
  bin=$1
  module=$2
  shift 2
  echo "== $bin $module"
  out=$(ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 "$bin" "$module" 2>&1)
  rc=$?
  echo "$out"
  line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
  if [ -z "$line" ]; then
    echo "$bin did not finish (exit $rc)"
    total_fail=$((total_fail + 1))
    status=1
    continue
  fi
  total_pass=$((total_pass + $(echo "$line" | cut -d' ' -f1)))
  total_fail=$((total_fail + $(echo "$line" | cut -d' ' -f3)))
  [ "$rc" -eq 0 ] || status=1
done
echo "pkcs11-c-tests: $total_pass passed, $total_fail failed"
exit $status
