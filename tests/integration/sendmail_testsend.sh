#!/bin/bash
# sendmail_testsend.sh: o365-sendmail --test-send ADDR (issue 6).
#   Postfix (tests/fake/postfix.sh): the transcript shows the greeting, EHLO,
#     STARTTLS, the capabilities, AUTH, MAIL/RCPT/DATA and the server's
#     replies; exit 0; the message arrives exactly once with From rewritten
#     to the relay mailbox; nothing is left in the queue.
#   The fake Exchange Online (tests/fake/fake_exo_smtp.py): SendAsDenied and
#     535 5.7.139 print the reply, the reply table's action and its advice,
#     exit EX_UNAVAILABLE, leave nothing queued or failed and no bounce.
#   XOAUTH2 (tests/fake/fake_token.py + the fake Exchange): AUTH XOAUTH2 in
#     the transcript, exit 0; an app without rights on the mailbox: one
#     refresh, then hold-queue with the advice.
#   Never the password, the access tokens, the client secret nor their base64
#     forms (LOGIN, PLAIN, the XOAUTH2 blob) in stdout or in stderr (-v: the
#     mail log's lines go there too).
# Runs as root (a per-run queue user is created and removed).
set -u
W=${O365_WRAP:-}
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
# the build-tree front end: it execs the build-tree runner (o365-sendmail
# would exec the installed one); with -C, as root, it behaves the same
BIN=$BUILD/sendmail-shim/o365-sendmail-test
PF=$SRC/tests/fake/postfix.sh
FAKE=$SRC/tests/fake/fake_exo_smtp.py
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 1; }
[ -x "$BIN" ] || { echo "FAIL: $BIN not built"; exit 1; }

T=$(mktemp -d /tmp/o365-ts.XXXXXX)
chmod 755 "$T"
QU=o365t$$
FAILS=0
FPID= TPID=
cleanup() {
	[ -n "$FPID" ] && kill "$FPID" 2>/dev/null && wait "$FPID" 2>/dev/null
	[ -n "$TPID" ] && kill "$TPID" 2>/dev/null && wait "$TPID" 2>/dev/null
	bash "$PF" stop "$T/pf" > /dev/null 2>&1
	userdel "$QU" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }
has() { grep -qE "$1" "$T/ts.out"; }

bash "$SRC/tests/fake/mkcerts.sh" "$T/pki" > /dev/null || { echo "FAIL: mkcerts"; exit 1; }
chmod 755 "$T/pki"; chmod 644 "$T/pki/ca.pem"
PASS='ts-Pa55 w0rd-marker'
printf '%s\n' "$PASS" > "$T/secret"; chmod 600 "$T/secret"
mkconf() {	# mkconf PORT REWRITE
	cat > "$T/sendmail.conf" <<CONF
smtp = { host = "localhost"; port = $1; timeout = 20; helo = "web1.example.com"; };
tls = { ca_file = "$T/pki/ca.pem"; };
auth = { user = "relay@contoso.com"; password_file = "$T/secret"; mechanism = "login"; };
from = { address = "relay@contoso.com"; rewrite = "$2"; };
queue = { dir = "$T/spool"; user = "$QU"; };
aliases = { team = "ann@example.org, busy@example.org"; };
CONF
}
C="-C $T/sendmail.conf"
mkconf 9 local
$BIN $C --init > /dev/null || { echo "FAIL: --init"; exit 1; }
Q=$T/spool/queue
nq() { ls "$Q"/*.env "$T/spool/failed"/*.env 2>/dev/null | wc -l; }
# the password in every form it takes on the wire
b64() { printf '%s' "$1" | base64 -w0; }
SECRETS=("$PASS" "$(b64 "$PASS")" "$(printf '\0relay@contoso.com\0%s' "$PASS" | base64 -w0)")
no_secret() {	# no_secret WHAT FILE...
	local s
	for s in "${SECRETS[@]}"; do
		grep -qF -- "$s" "${@:2}" && { fail "$1: a form of the password was printed"; return; }
	done
	ok "$1: the password appears in no form"
}

# --- Postfix
port=$(bash "$PF" start "$T/pf" "$T/pki" relay@contoso.com "$PASS" | sed -n 's/^PORT //p')
[ -n "$port" ] || { echo "FAIL: postfix did not start"; exit 1; }
mkconf "$port" local
$W $BIN $C -v --test-send bob@example.org > "$T/ts.out" 2> "$T/ts.err"; rc=$?
[ $rc = 0 ] && has '^Result: sent: 250' && ok "postfix: exit 0, Result: sent" || fail "postfix: exit $rc: $(cat "$T/ts.out" "$T/ts.err")"
has '^  S: 220 ' && has '^  C: EHLO web1.example.com$' && has '^  C: STARTTLS$' && has '^  S: 220 2.0.0' &&
	ok "postfix: greeting, EHLO, STARTTLS in the transcript" || fail "postfix transcript: $(cat "$T/ts.out")"
has '^  S: 250-STARTTLS' && has '^  S: 250-AUTH PLAIN LOGIN' && ok "postfix: capabilities before and after STARTTLS" ||
	fail "postfix capabilities: $(cat "$T/ts.out")"
has '^  C: AUTH LOGIN$' && has '^  S: 334 <secret>$' && has '^  C: <secret>$' && has '^  S: 235 ' &&
	ok "postfix: AUTH LOGIN with the challenges and answers masked" || fail "postfix AUTH: $(cat "$T/ts.out")"
has '^  C: MAIL FROM:<relay@contoso.com>' && has '^  C: RCPT TO:<bob@example.org>$' && has '^  C: DATA$' &&
	has '^  S: 354 ' && has '^  C: <message, [0-9]+ bytes>$' && has '^  S: 250 2.0.0 Ok: queued' &&
	ok "postfix: MAIL, RCPT, DATA and the replies" || fail "postfix transaction: $(cat "$T/ts.out")"
no_secret "postfix" "$T/ts.out" "$T/ts.err"
for _ in $(seq 100); do ls "$T/pf/out"/*.eml > /dev/null 2>&1 && break; sleep 0.1; done
n=$(ls "$T/pf/out"/*.eml 2>/dev/null | wc -l)
[ "$n" = 1 ] && [ "$(grep -c '^  C: DATA$' "$T/ts.out")" = 1 ] && grep -q '^Subject: o365-sendmail test message from ' "$T/pf/out/1.eml" &&
	grep -q '^RCPT TO:<bob@example.org>$' "$T/pf/out/1.env" && ok "postfix: arrived exactly once" ||
	fail "postfix: $n messages"
grep -q '^From: .*relay@contoso.com' "$T/pf/out/1.eml" && ok "postfix: From rewritten like any message of root's" ||
	fail "From: $(grep ^From "$T/pf/out/1.eml")"
[ "$(nq)" = 0 ] && ok "postfix: nothing left in the queue" || fail "postfix: queue $(nq)"
$W $BIN $C --test-send 'not an address<' > "$T/ts.out" 2>&1; rc=$?
[ $rc = 65 ] && [ "$(nq)" = 0 ] && ok "a bad address: EX_DATAERR, nothing queued" || fail "bad address: $rc $(cat "$T/ts.out")"
bash "$PF" stop "$T/pf" > /dev/null 2>&1

# --- the fake Exchange Online
echo '{}' > "$T/tokens.json"
printf '{"relay@contoso.com": {"sendas": [], "apps": [], "password": "%s"}}\n' "$PASS" > "$T/map.json"
serve() {	# serve REWRITE ARGS...
	local rw=$1; shift
	[ -n "$FPID" ] && { kill "$FPID" 2>/dev/null; wait "$FPID" 2>/dev/null; }
	rm -rf "$T/out"; mkdir -p "$T/out"
	/usr/bin/python3 "$FAKE" --cert "$T/pki/server" --tokens "$T/tokens.json" --outdir "$T/out" \
		--sendas-map "$T/map.json" --lifetime 120 "$@" > "$T/fake.out" 2>&1 &
	FPID=$!
	for _ in $(seq 300); do grep -q "^PORT " "$T/fake.out" 2>/dev/null && break; sleep 0.1; done
	port=$(sed -n 's/^PORT //p' "$T/fake.out")
	[ -n "$port" ] || { fail "fake did not start: $(cat "$T/fake.out")"; return 1; }
	mkconf "$port" "$rw"
}
serve never --basic-auth on
$W $BIN $C -v --test-send bob@example.org > "$T/ts.out" 2> "$T/ts.err"; rc=$?
[ $rc = 69 ] && has '^  S: 554 5.2.252 SendAsDenied' && has '^Queue action: hold-message \(rule sendas-denied\)' &&
	has '^Advice: .*SendAs' && ok "SendAsDenied: the reply, the action and its advice, EX_UNAVAILABLE" ||
	fail "SendAsDenied: exit $rc: $(cat "$T/ts.out")"
has '^  S: 250-AUTH LOGIN XOAUTH2' && has '^  S: 235 2.7.0' && ok "exo: capabilities and AUTH in the transcript" ||
	fail "exo transcript: $(cat "$T/ts.out")"
[ "$(nq)" = 0 ] && ! ls "$T/out"/*.eml > /dev/null 2>&1 && has 'removed from the queue' &&
	ok "SendAsDenied: nothing delivered, nothing left queued or failed" || fail "SendAsDenied: queue $(nq)"
no_secret "SendAsDenied" "$T/ts.out" "$T/ts.err"
serve local --basic-auth disabled
$W $BIN $C -v --test-send bob@example.org > "$T/ts.out" 2> "$T/ts.err"; rc=$?
[ $rc = 69 ] && has '^  S: 535 5.7.139 ' && has '^Queue action: hold-queue' && has '^Advice: .*Set-CASMailbox' &&
	ok "535 5.7.139: the reply, hold-queue and its advice, EX_UNAVAILABLE" || fail "5.7.139: exit $rc: $(cat "$T/ts.out")"
has 'MAIL FROM' && fail "5.7.139: MAIL sent after a refused AUTH" || ok "5.7.139: no MAIL after the refusal"
[ "$(nq)" = 0 ] && ok "5.7.139: the test message is not left queued" || fail "5.7.139: queue $(nq)"
no_secret "5.7.139" "$T/ts.out" "$T/ts.err"
serve local --basic-auth on
$W $BIN $C --test-send bob@example.org > "$T/ts.out" 2> "$T/ts.err"; rc=$?
[ $rc = 0 ] && [ "$(ls "$T/out"/*.eml 2>/dev/null | wc -l)" = 1 ] && grep -q 'queue resumed' "$T/ts.out" &&
	ok "after the fix: sent once, and the held queue resumed" || fail "fixed: exit $rc: $(cat "$T/ts.out")"
no_secret "exo" "$T/ts.out" "$T/ts.err"
# an alias for two recipients, one of them deferred by the server: not a success,
# and the deferred rest is not left queued to be retried or bounced later
serve local --basic-auth on --defer-rcpt busy@example.org
$W $BIN $C --test-send team > "$T/ts.out" 2> "$T/ts.err"; rc=$?
[ $rc = 75 ] && has '^  S: 451 4.7.500 ' && has '^Not sent to every recipient' &&
	[ "$(ls "$T/out"/*.eml 2>/dev/null | wc -l)" = 1 ] && [ "$(nq)" = 0 ] &&
	ok "an alias half deferred: EX_TEMPFAIL, sent once, the rest not left queued" ||
	fail "half deferred: exit $rc, queue $(nq): $(cat "$T/ts.out")"

# --- XOAUTH2: client credentials from the fake Entra ID
SECRET='cs-Marker.0x5d1-ts-secret'
mkdir -p "$T/state"
printf '%s\n' "$SECRET" > "$T/client.secret"; chmod 600 "$T/client.secret"
cat > "$T/state/users.json" <<JSON
{"users": {}, "clients": {"app-client": {"public": false, "secret": "$SECRET", "case": "ok"}},
 "mode": "normal", "expires_in": 3599, "rotate_refresh": true, "device_interval": 1}
JSON
/usr/bin/python3 "$SRC/tests/fake/fake_token.py" --cert "$T/pki/server" --state "$T/state" --lifetime 120 \
	> "$T/tok.port" 2> "$T/tok.err" &
TPID=$!
for _ in $(seq 300); do grep -q '^PORT ' "$T/tok.port" 2>/dev/null && break; sleep 0.1; done
TOK=$(sed -n 's/^PORT //p' "$T/tok.port")
[ -n "$TOK" ] || fail "fake_token did not start: $(cat "$T/tok.err")"
xserve() {	# xserve APPS: the fake Exchange taking the fake Entra ID's tokens
	printf '{"relay@contoso.com": {"sendas": [], "apps": %s}}\n' "$1" > "$T/map.json"
	[ -n "$FPID" ] && { kill "$FPID" 2>/dev/null; wait "$FPID" 2>/dev/null; }
	rm -rf "$T/out"; mkdir -p "$T/out"
	/usr/bin/python3 "$FAKE" --cert "$T/pki/server" --tokens "$T/state/tokens.json" --outdir "$T/out" \
		--sendas-map "$T/map.json" --lifetime 120 > "$T/fake.out" 2>&1 &
	FPID=$!
	for _ in $(seq 300); do grep -q "^PORT " "$T/fake.out" 2>/dev/null && break; sleep 0.1; done
	port=$(sed -n 's/^PORT //p' "$T/fake.out")
	cat > "$T/sendmail.conf" <<CONF
smtp = { host = "localhost"; port = $port; timeout = 10; helo = "web1.example.com"; };
tls = { ca_file = "$T/pki/ca.pem"; };
auth = { user = "relay@contoso.com"; mechanism = "xoauth2"; };
from = { address = "relay@contoso.com"; rewrite = "local"; };
queue = { dir = "$T/spool"; user = "$QU"; };
oauth = { authority = "https://127.0.0.1:$TOK"; tenant = "contoso.onmicrosoft.com";
	client_id = "app-client"; client_secret_file = "$T/client.secret"; };
CONF
}
no_token() {	# no_token WHAT FILE...: no token the fake issued, no secret, in any form
	/usr/bin/python3 - "$T/state/tokens.json" "$SECRET" "${@:2}" <<'PY' && ok "$1: no token or secret in any form" ||
import base64, json, sys
toks, secret, files = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3:]
needles = [secret, base64.b64encode(secret.encode()).decode()]
for t in toks:
    needles += [t, base64.b64encode(t.encode()).decode(),
                base64.b64encode(("user=relay@contoso.com\x01auth=Bearer %s\x01\x01" % t).encode()).decode()]
text = "".join(open(f, errors="replace").read() for f in files)
bad = [n[:12] for n in needles if n and n in text]
print("found:", bad) if bad else None
sys.exit(1 if bad or len(toks) == 0 else 0)
PY
	fail "$1: a token or secret was printed (or no token issued)"
}
xserve '["app-client"]'
$W $BIN $C -v --test-send bob@example.org > "$T/ts.out" 2> "$T/ts.err"; rc=$?
[ $rc = 0 ] && has '^  C: AUTH XOAUTH2$' && has '^  C: <secret>$' && has '^  S: 235 2.7.0' && has '^Result: sent' &&
	[ "$(ls "$T/out"/*.eml 2>/dev/null | wc -l)" = 1 ] && ok "xoauth2: AUTH XOAUTH2 masked, sent once" ||
	fail "xoauth2: exit $rc: $(cat "$T/ts.out" "$T/ts.err")"
no_token "xoauth2" "$T/ts.out" "$T/ts.err"
xserve '[]'
$W $BIN $C -v --test-send bob@example.org > "$T/ts.out" 2> "$T/ts.err"; rc=$?
[ $rc = 69 ] && has '^  S: 535 5.7.3' && has '^Queue action: hold-queue' && grep -q 'SMTP.SendAsApp' "$T/ts.out" &&
	[ "$(grep -c '^  C: AUTH XOAUTH2$' "$T/ts.out")" = 2 ] && [ "$(nq)" = 0 ] &&
	ok "xoauth2 refused: one refresh, hold-queue, the advice names SMTP.SendAsApp" ||
	fail "xoauth2 refused: exit $rc: $(cat "$T/ts.out" "$T/ts.err")"
no_token "xoauth2 refused" "$T/ts.out" "$T/ts.err"

[ $FAILS = 0 ] || { echo "$FAILS failure(s)"; exit 1; }
echo "all passed"
