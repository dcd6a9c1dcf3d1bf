#!/usr/bin/env bash
# pam_authtest.sh BUILD SOURCE: o365-authtest against the fakes.
#   - imap-login accepted (exit 0): TLS details, greeting, capabilities shown
#   - wrong password (1), untrusted certificate (2, the reason named),
#     CR LF in the user name (1, nothing sent), root (3), bad config (78)
#   - entra-ropc accepted (0, "token: issued"), AADSTS50126 (1, the code shown)
#   - no password and no token in anything it printed
set -euo pipefail
BUILD=$(cd "${1:?usage: pam_authtest.sh BUILD SOURCE}" && pwd)
SRC=$(cd "${2:?usage: pam_authtest.sh BUILD SOURCE}" && pwd)
AT=$BUILD/pam_o365/o365-authtest
WRAP=${O365_WRAP:-}
PY=/usr/bin/python3
PW='Au th"test\{pw} €-marker-6620'

[ -x "$AT" ] || { echo "FAIL: $AT not built"; exit 1; }
[ -f "$SRC/tests/fake/fake_token.py" ] || { echo "FAIL: fake_token.py missing"; exit 1; }

. "$SRC/tests/integration/lib/pam.bash"
pam_workdir o365-authtest

bash "$SRC/tests/fake/mkcerts.sh" "$tmp/pki"
mkdir "$tmp/state"
$PY -c 'import json, sys; json.dump({"bob": sys.argv[1]}, open(sys.argv[2], "w"))' "$PW" "$tmp/logins.json"
$PY -c 'import json, sys; json.dump({"users": {"alice@contoso.com": {"password": sys.argv[1], "case": "ok"}},
	"clients": {"app": {"public": True, "case": "ok"}}, "mode": "normal"}, open(sys.argv[2], "w"))' \
	"$PW" "$tmp/state/users.json"
start tport token $PY "$SRC/tests/fake/fake_token.py" --cert "$tmp/pki/server" \
	--state "$tmp/state" --lifetime 300
start oport onprem $PY "$SRC/tests/fake/fake_imap_xoauth2.py" --cert "$tmp/pki/server" \
	--tokens "$tmp/state/tokens.json" --logins "$tmp/logins.json" --lifetime 300 \
	--transcript "$tmp/onprem.transcript"
start xport exo $PY "$SRC/tests/fake/fake_imap_xoauth2.py" --cert "$tmp/pki/server" \
	--tokens "$tmp/state/tokens.json" --lifetime 300
start uport untrusted $PY "$SRC/tests/fake/fake_imap_xoauth2.py" --cert "$tmp/pki/untrusted" \
	--tokens "$tmp/state/tokens.json" --lifetime 300
[ -n "$tport" ] && [ -n "$oport" ] && [ -n "$xport" ] && [ -n "$uport" ] || fail "fakes did not start"

cat > "$tmp/login.conf" <<EOF
imap = { host = "localhost"; port = $oport; timeout = 10; };
tls = { ca_file = "$tmp/pki/ca.pem"; };
EOF
cat > "$tmp/untrusted.conf" <<EOF
imap = { host = "localhost"; port = $uport; timeout = 10; };
tls = { ca_file = "$tmp/pki/ca.pem"; };
EOF
cat > "$tmp/ropc.conf" <<EOF
auth = { method = "entra-ropc"; };
oauth = { authority = "https://localhost:$tport"; tenant = "contoso.onmicrosoft.com"; client_id = "app"; };
imap = { host = "localhost"; port = $xport; timeout = 10; };
tls = { ca_file = "$tmp/pki/ca.pem"; };
user = { map = "%u@contoso.com"; };
EOF

n=0
# at WANT CONF USER PASSWORD [-d]: run o365-authtest, check its exit status
at() {
	local want=$1 conf=$2 user=$3 pw=$4 rc=0
	shift 4
	n=$((n + 1))
	out=$tmp/at.$n.out
	printf '%s\n' "$pw" | $WRAP "$AT" "$user" -c "$tmp/$conf" "$@" >"$out" 2>&1 || rc=$?
	[ "$rc" -eq "$want" ] || { cat "$out"; fail "$user with $conf: exit $rc, want $want"; }
}
has() { grep -qF -- "$1" "$out" || { cat "$out"; fail "no \"$1\" in the output"; }; }

at 0 login.conf bob "$PW" -d
has "tls: TLSv1."; has "verification: ok"; has "tls: issuer:"; has "imap: greeting:"
has "imap: capabilities:"; has "AUTH=XOAUTH2"; has "result: success"; has "<secret>"
at 1 login.conf bob "wrong-$PW"
has "result: auth_err"
at 2 untrusted.conf bob "$PW"
has "result: authinfo_unavail"; has "certificate"
echo "ok: imap-login accepted, refused, untrusted certificate"

conns=$(grep -c '^CONNECT' "$tmp/onprem.transcript")
at 1 login.conf $'bob\r\nA1 LOGOUT' "$PW"
has "refused before anything is sent"
at 1 login.conf bob ""
n=$((n + 1)); out=$tmp/at.$n.out; rc=0		# a NUL byte inside the password
printf 'ab\0cd\n' | $WRAP "$AT" bob -c "$tmp/login.conf" >"$out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || { cat "$out"; fail "NUL in the password: exit $rc, want 1"; }
has "NUL"
[ "$(grep -c '^CONNECT' "$tmp/onprem.transcript")" -eq "$conns" ] || fail "CRLF user or empty password was sent"
at 3 login.conf root "$PW"
has "out of scope"
printf 'imap = { port = 0; };\n' > "$tmp/bad.conf"
at 78 bad.conf bob "$PW"
has "bad.conf:1: imap.port"
echo "ok: refused before sending, scope, bad config"

at 0 ropc.conf alice "$PW" -d
has "token: issued"; has "access token <secret>"; has "AUTHENTICATE XOAUTH2 <secret>"; has "result: success"
at 1 ropc.conf alice "wrong-$PW"
has "AADSTS50126"; has "invalid_grant"; has "result: auth_err"
echo "ok: entra-ropc accepted and refused"

no_secret_in "$PW" "$tmp/state/tokens.json" "$tmp"/at.*.out
echo "ok: no password or token in the output"
echo PASS
