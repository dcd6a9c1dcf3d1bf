#!/usr/bin/env bash
# pam_entra.sh BUILD SOURCE: pam_o365.so (entra-ropc) through the real
# pamtester against the fake Entra ID token endpoint (tests/fake/fake_token.py)
# and the fake Exchange Online IMAP server (tests/fake/fake_imap_xoauth2.py).
#   - right password: a token is issued, then accepted by IMAP XOAUTH2
#   - wrong password (50126), unknown user (50034): Authentication failure
#   - expired password (50055), MFA (50076): Permission denied, with a message
#     for the user
#   - public client flows off (7000218), 429: cannot retrieve authentication info
#   - a token endpoint with a certificate we do not trust, an IMAP server that
#     never answers (within imap.timeout): cannot retrieve authentication info
#   - CR LF in the user name: neither server sees a request
#   - no password and no token in anything pamtester printed
# (Every AADSTS case is also driven through libpam in test_pam_module.)
set -euo pipefail
BUILD=$(cd "${1:?usage: pam_entra.sh BUILD SOURCE}" && pwd)
SRC=$(cd "${2:?usage: pam_entra.sh BUILD SOURCE}" && pwd)
MODULE=$BUILD/pam_o365/pam_o365.so
WRAP=${O365_WRAP:-}
# The whole attempt (token endpoint + IMAP) must fit imap.timeout; under
# valgrind on a loaded machine OpenSSL alone can take seconds, so give the
# attempts that are meant to finish far more room there.
deftimeout=10
[ -n "$WRAP" ] && deftimeout=60
PY=/usr/bin/python3
PW=entra-Secret-marker-8812

[ -f "$MODULE" ] || { echo "FAIL: $MODULE not built"; exit 1; }
[ -f "$SRC/tests/fake/fake_token.py" ] || { echo "FAIL: fake_token.py missing"; exit 1; }
[ -x /usr/bin/pamtester ] || { echo "FAIL: pamtester missing"; exit 1; }
. "$SRC/tests/integration/lib/pam.bash"
pam_workdir o365-pam-entra o365-test

bash "$SRC/tests/fake/mkcerts.sh" "$tmp/pki"
mkdir "$tmp/state"
cat > "$tmp/state/users.json" <<EOF
{"users": {"alice@contoso.com": {"password": "$PW", "case": "ok"},
           "expired@contoso.com": {"password": "$PW", "case": "50055"},
           "mfa@contoso.com": {"password": "$PW", "case": "50076"}},
 "clients": {"public-app": {"public": true, "case": "ok"},
             "confidential-app": {"public": false, "secret": "s", "case": "ok"}},
 "mode": "normal", "expires_in": 3599}
EOF
start tport token $PY "$SRC/tests/fake/fake_token.py" --cert "$tmp/pki/server" \
	--state "$tmp/state" --lifetime 300
start iport exo $PY "$SRC/tests/fake/fake_imap_xoauth2.py" --cert "$tmp/pki/server" \
	--tokens "$tmp/state/tokens.json" --transcript "$tmp/exo.transcript" --lifetime 300
start sport stall $PY "$SRC/tests/fake/fake_imap_xoauth2.py" --cert "$tmp/pki/server" \
	--tokens "$tmp/state/tokens.json" --stall --lifetime 300
[ -n "$tport" ] && [ -n "$iport" ] && [ -n "$sport" ] || fail "fakes did not start"

# conf NAME [CLIENT_ID] [IMAP_PORT] [CA] [TIMEOUT]
conf() {
	cat > "$tmp/$1.conf" <<EOF
auth = { method = "entra-ropc"; verify_imap = true; };
oauth = { authority = "https://localhost:$tport"; tenant = "contoso.onmicrosoft.com";
          client_id = "${2:-public-app}"; };
imap = { host = "localhost"; port = ${3:-$iport}; timeout = ${5:-$deftimeout}; };
user = { map = "%u@contoso.com"; };
EOF
	# CA "system": no ca_file, the system store (which does not hold the test CA)
	[ "${4:-}" = system ] ||
		echo "tls = { ca_file = \"${4:-$tmp/pki/ca.pem}\"; };" >> "$tmp/$1.conf"
	cat > "/etc/pam.d/$svc" <<EOF
auth     required  $MODULE config=$tmp/$1.conf
account  required  $MODULE config=$tmp/$1.conf
EOF
}

n_out=0
# pt USER PASSWORD OPS...: output kept in $tmp/pt.<n>.out for the final search
pt() {
	n_out=$((n_out + 1))
	out=$tmp/pt.$n_out.out
	pamtester_to "$out" "$@"
}
# expect STATUS TEXT USER PASSWORD OPS...
expect() {
	local want=$1 text=$2 rc=0
	shift 2
	pt "$@" || rc=$?
	[ "$rc" -eq "$want" ] || { cat "$out"; fail "$1: pamtester status $rc, want $want"; }
	grep -qF -- "$text" "$out" || { cat "$out"; fail "$1: no \"$text\""; }
}

conf main
expect 0 "successfully authenticated" alice "$PW" authenticate acct_mgmt setcred
grep -q "AUTH user=alice@contoso.com ok" "$tmp/exo.transcript" || fail "token not used for IMAP"
echo "ok: password grant, then IMAP XOAUTH2"

expect 1 "Authentication failure" alice "wrong-marker-$PW" authenticate
expect 1 "Authentication failure" ghost "$PW" authenticate
echo "ok: wrong password and unknown user refused alike"

expect 1 "Permission denied" expired "$PW" authenticate
grep -q "https://aka.ms/sspr" "$out" || fail "expired: no message for the user"
expect 1 "Permission denied" mfa "$PW" authenticate
grep -q "multi-factor" "$out" || fail "mfa: no message for the user"
echo "ok: expired password and MFA denied with a message"

conf confidential confidential-app
expect 1 "cannot retrieve authentication info" alice "$PW" authenticate
conf main
sed -i 's/"mode": "normal"/"mode": "429"/' "$tmp/state/users.json"
expect 1 "cannot retrieve authentication info" alice "$PW" authenticate
sed -i 's/"mode": "429"/"mode": "normal"/' "$tmp/state/users.json"
conf untrusted public-app "$iport" "$tmp/pki/other-ca.pem"
expect 1 "cannot retrieve authentication info" alice "$PW" authenticate
echo "ok: 7000218, 429 and an untrusted certificate: could not check"

# no environment variable changes what the module trusts (su keeps the
# caller's environment): the test CA offered through the environment must
# not make the login work, and a (dead) proxy must not make it fail
conf system public-app "$iport" system
SSL_CERT_FILE=$tmp/pki/ca.pem SSL_CERT_DIR=$tmp/pki CURL_CA_BUNDLE=$tmp/pki/ca.pem \
	expect 1 "cannot retrieve authentication info" alice "$PW" authenticate
conf main
https_proxy=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 ALL_PROXY=http://127.0.0.1:9 \
	NO_PROXY= no_proxy= expect 0 "successfully authenticated" alice "$PW" authenticate
echo "ok: SSL_CERT_FILE, SSL_CERT_DIR, CURL_CA_BUNDLE and proxies ignored"

conf stall public-app "$sport" "$tmp/pki/ca.pem" 2
t0=$(date +%s%N)
expect 1 "cannot retrieve authentication info" alice "$PW" authenticate
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -lt 15000 ] || fail "a never-answering IMAP server held the login $ms ms (imap.timeout 2 s)"
echo "ok: never-answering IMAP server: gave up after $ms ms"

conf main
reqs=$(wc -l < "$tmp/state/requests.log")
conns=$(grep -c '^CONNECT' "$tmp/exo.transcript")
expect 1 "Authentication failure" $'alice\r\nA1 LOGOUT' "$PW" authenticate
[ "$(wc -l < "$tmp/state/requests.log")" -eq "$reqs" ] || fail "CRLF user reached the token endpoint"
[ "$(grep -c '^CONNECT' "$tmp/exo.transcript")" -eq "$conns" ] || fail "CRLF user reached IMAP"
expect 1 "Authentication failure" alice "" authenticate
[ "$(wc -l < "$tmp/state/requests.log")" -eq "$reqs" ] || fail "empty password was sent"
echo "ok: CRLF in the user name and an empty password sent nothing"

# nothing pamtester printed holds the password or any issued token
no_secret_in "$PW" "$tmp/state/tokens.json" "$tmp"/pt.*.out
echo "ok: no password or token in any output"
echo PASS
