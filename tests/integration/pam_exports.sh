#!/usr/bin/env bash
# pam_exports.sh BUILD SOURCE: what pam_o365.so shows the world.
#   - it exports pam_sm_authenticate, pam_sm_setcred, pam_sm_acct_mgmt and
#     nothing else (version script); pam_o365_oauth.so only its table
#   - every symbol resolves (-z defs) and libcurl is not loaded with the
#     module (it costs milliseconds per login; pam_o365_oauth.so has it)
#   - it never calls openlog, exit, curl_global_cleanup or OPENSSL_cleanup
set -euo pipefail
BUILD=$(cd "${1:?usage: pam_exports.sh BUILD SOURCE}" && pwd)
M=$BUILD/pam_o365/pam_o365.so
H=$BUILD/pam_o365/pam_o365_oauth.so
fail() { echo "FAIL: $*"; exit 1; }
[ -f "$M" ] && [ -f "$H" ] || fail "pam_o365.so or pam_o365_oauth.so not built"

got=$(nm -D --defined-only "$M" | awk '{print $3}' | sort | tr '\n' ' ')
[ "$got" = "pam_sm_acct_mgmt pam_sm_authenticate pam_sm_setcred " ] || fail "pam_o365.so exports: $got"
got=$(nm -D --defined-only "$H" | awk '{print $3}' | sort | tr '\n' ' ')
[ "$got" = "pam_o365_oauth_api " ] || fail "pam_o365_oauth.so exports: $got"
echo "ok: exports"

if readelf -d "$M" | grep -q 'NEEDED.*libcurl'; then fail "pam_o365.so needs libcurl"; fi
readelf -d "$H" | grep -q 'NEEDED.*libcurl' || fail "pam_o365_oauth.so does not need libcurl"
echo "ok: libcurl only in the token client"

for f in "$M" "$H"; do
	und=$(nm -D --undefined-only "$f" | awk '{print $2}')
	for bad in openlog closelog exit _exit abort curl_global_cleanup OPENSSL_cleanup signal sigaction; do
		if printf '%s\n' "$und" | grep -qx "$bad"; then fail "$(basename "$f") calls $bad"; fi
	done
done
echo "ok: no openlog, exit, global cleanup or signal changes"
echo PASS
