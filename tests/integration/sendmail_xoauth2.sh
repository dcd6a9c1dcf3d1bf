#!/bin/bash
# sendmail_xoauth2.sh: o365-sendmail relaying with auth.mechanism "xoauth2"
# against tests/fake/fake_token.py (Entra ID) and tests/fake/fake_exo_smtp.py
# (Exchange Online: XOAUTH2 only with a valid, unexpired token from the fake).
#   client credentials: delivered byte for byte, token cached between runs
#   the delivering runner never loads libcurl or json-c: only the child it
#     forks per token does (LD_DEBUG=libs, per pid)
#   app without SendAs rights: one refresh, queue held, one alert, no bounce,
#     attempts not counted; fixed -> the next run delivers
#   wrong client secret (invalid_client): held, alert names the secret file
#   --check / -v: identity, tenant, grant, expiry; unsafe secret file refused
#     (and the run held with one alert)
#   --oauth-login without -v: URL and code, "still waiting" (once, not per
#     poll), slow_down with the new interval, and a last line for success
#     (where the token is), declined, expired_token and a code that ran out
#   refresh token: delivered, rotated token stored (owner and mode kept)
#   cached token expired at the server in a queue run: refresh, nothing lost
#   a token under the 10-minute margin is never reused from the cache
#   two concurrent runners: no rotation lost
#   refresh token refused (AADSTS700082): held, alert says --oauth-login
#   no token, refresh token or client secret in any output or log
# Runs as root (a per-run queue user is created and removed).
set -u
W=${O365_WRAP:-}
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
# the build-tree front end: it execs the build-tree runner (o365-sendmail
# would exec the installed one); with -C, as root, it behaves the same
BIN=$BUILD/sendmail-shim/o365-sendmail-test
PY=/usr/bin/python3
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 1; }
[ -x "$BIN" ] || { echo "FAIL: $BIN not built"; exit 1; }

T=$(mktemp -d /tmp/o365-smxo.XXXXXX)
QU=o365o$$
FAILS=0
TPID= EPID=
cleanup() {
	[ -n "$TPID" ] && kill "$TPID" 2>/dev/null && wait "$TPID" 2>/dev/null
	[ -n "$EPID" ] && kill "$EPID" 2>/dev/null && wait "$EPID" 2>/dev/null
	userdel "$QU" 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }

bash "$SRC/tests/fake/mkcerts.sh" "$T/pki" > /dev/null || { echo "FAIL: mkcerts"; exit 1; }
chmod 755 "$T" "$T/pki"; chmod 644 "$T/pki/ca.pem"	# the runner reads it as the queue user
SECRET='cs-Marker.0x7f3e-app-secret'
mkdir -p "$T/state" "$T/out"
users() {	# users EXPIRES_IN
	cat > "$T/state/users.json" <<JSON
{"users": {},
 "clients": {"app-client": {"public": false, "secret": "$SECRET", "case": "ok"},
             "pub-client": {"public": true, "case": "ok"}},
 "mode": "normal", "expires_in": $1, "rotate_refresh": true, "device_interval": 1}
JSON
}
users 3599
sendas() {	# sendas APPS_JSON_LIST
	printf '{"relay@contoso.com": {"sendas": [], "apps": %s}}\n' "$1" > "$T/sendas.json"
}
sendas '["app-client"]'

# the fakes: each prints PORT first
port_of() {	# port_of NAME
	for _ in $(seq 300); do grep -q '^PORT ' "$T/$1.port" 2>/dev/null && break; sleep 0.1; done	# a loaded machine
	sed -n 's/^PORT //p' "$T/$1.port"
}
$PY "$SRC/tests/fake/fake_token.py" --cert "$T/pki/server" --state "$T/state" --lifetime 600 \
	> "$T/tok.port" 2> "$T/tok.err" &
TPID=$!
$PY "$SRC/tests/fake/fake_exo_smtp.py" --cert "$T/pki/server" --tokens "$T/state/tokens.json" \
	--outdir "$T/out" --sendas-map "$T/sendas.json" --log "$T/exo.log" --lifetime 600 \
	> "$T/exo.port" 2> "$T/exo.err" &
EPID=$!
TOK=$(port_of tok)
EXO=$(port_of exo)
[ -n "$TOK" ] && [ -n "$EXO" ] || { echo "FAIL: fakes did not start: $(cat "$T"/*.err)"; exit 1; }

printf '%s\n' "$SECRET" > "$T/client.secret"
chmod 600 "$T/client.secret"
mkconf() {	# mkconf GRANT-LINE
	cat > "$T/sendmail.conf" <<CONF
smtp = { host = "localhost"; port = $EXO; timeout = 10; tls = "starttls"; helo = "web1.example.com"; };
tls = { ca_file = "$T/pki/ca.pem"; };
auth = { user = "relay@contoso.com"; mechanism = "xoauth2"; };
from = { address = "relay@contoso.com"; rewrite = "local"; };
queue = { dir = "$T/spool"; user = "$QU"; };
oauth = { authority = "https://127.0.0.1:$TOK"; tenant = "contoso.onmicrosoft.com"; $1 };
CONF
}
CC='client_id = "app-client"; client_secret_file = "'$T'/client.secret";'
RTF=$T/spool/state/refresh-token
RT='client_id = "pub-client"; refresh_token_file = "'$RTF'";'
mkconf "$CC"
C="-C $T/sendmail.conf"
$W $BIN $C --init > "$T/init.out" 2>&1 || { echo "FAIL: --init: $(cat "$T/init.out")"; exit 1; }
Q=$T/spool/queue
F=$T/spool/failed
S=$T/spool/state
[ "$(stat -c '%U %a' "$S")" = "$QU 700" ] && ok "--init: state/ 0700 owned by the queue user" ||
	fail "--init: state/ $(stat -c '%U %a' "$S")"

msg() {	# msg N: complete headers, so the bytes on the wire are known
	printf 'From: relay@contoso.com\nTo: bob@example.org\nSubject: m%s\nDate: Thu, 26 Nov 2026 00:00:00 +0000\nMessage-ID: <m%s@example.org>\n\nbody %s\n.dot line\n' "$1" "$1" "$1"
}
queue1() { msg "$1" | $W $BIN $C -odq -i bob@example.org || fail "queueing m$1"; }
runq() { $W $BIN $C -v -q > "$T/run.out" 2>&1; RC=$?; echo "--- run" >> "$T/all.out"; cat "$T/run.out" >> "$T/all.out"; }
nq() { ls "$Q"/*.env 2>/dev/null | wc -l; }
neml() { ls "$T/out"/*.eml 2>/dev/null | wc -l; }
ntok() { grep -c "\"grant_type\": \"$1\"" "$T/state/requests.log" 2>/dev/null || true; }
has_eml() {	# has_eml N: some delivered .eml is m N, exactly
	local f
	for f in "$T/out"/*.eml; do
		[ -f "$f" ] || continue
		cmp -s "$f" <(msg "$1" | sed 's/$/\r/') && return 0
	done
	return 1
}

# --- client credentials: delivered, the token cached for the next run
queue1 1; queue1 2
runq
[ "$RC" = 0 ] && [ "$(nq)" = 0 ] && [ "$(neml)" = 2 ] && ok "client credentials: both delivered" ||
	fail "client credentials: rc=$RC queue=$(nq) eml=$(neml): $(cat "$T/run.out")"
has_eml 1 && has_eml 2 && ok "client credentials: bytes as sent" || fail "delivered bytes differ"
grep -q 'User: relay@contoso.com' "$T/out/1.env" && ok "authenticated as the relay mailbox" || fail "env: $(cat "$T/out/1.env")"
[ "$(ntok client_credentials)" = 1 ] || fail "token requests: $(ntok client_credentials)"
queue1 3
runq
[ "$(neml)" = 3 ] && [ "$(ntok client_credentials)" = 1 ] && ok "second run: cached token used, no request" ||
	fail "second run: eml=$(neml) requests=$(ntok client_credentials)"

# --- libcurl and json-c only in the token child, never in the runner that
# keeps the SMTP session: the pids that load them are not the runner's
if [ -z "$W" ]; then
	queue1 3b
	rm -f "$T"/ld.[0-9]*
	LD_DEBUG=libs LD_DEBUG_OUTPUT=$T/ld $BIN $C -q > "$T/ld.out" 2>&1; rc=$?
	cat "$T"/ld.[0-9]* > "$T/ld.all" 2>/dev/null
	pids() { grep -E "^ *[0-9]+:.*calling init: .*$1" "$T/ld.all" | sed 's/^ *\([0-9]*\):.*/\1/' | sort -u; }
	RUNP=$(pids 'libssl\.so'); CURLP=$(pids 'libcurl\.so'); JSONP=$(pids 'libjson-c\.so')
	[ $rc = 0 ] && [ "$(neml)" = 4 ] && [ -n "$RUNP" ] && [ -n "$CURLP" ] && [ -n "$JSONP" ] &&
		ok "LD_DEBUG run: delivered; runner pid(s) $(echo $RUNP), libcurl in pid(s) $(echo $CURLP)" ||
		fail "LD_DEBUG run: rc=$rc eml=$(neml) runner=[$RUNP] curl=[$CURLP] json=[$JSONP]: $(cat "$T/ld.out")"
	[ -z "$(comm -12 <(echo "$RUNP") <(echo "$CURLP $JSONP" | tr ' ' '\n' | sort -u))" ] &&
		ok "the delivering runner never loaded libcurl or json-c" ||
		fail "libcurl or json-c loaded in the runner: runner=[$RUNP] curl=[$CURLP] json=[$JSONP]"
	[ -z "$(comm -13 <(pids 'o365-sendmail-oauth\.so') <(echo "$CURLP"))" ] &&
		ok "libcurl came with the token module" || fail "libcurl loaded without the module"
	# the counts below are without this message
	for f in "$T/out"/*.eml; do
		cmp -s "$f" <(msg 3b | sed 's/$/\r/') && rm -f "$f" "${f%.eml}.env"
	done
fi

# --- --check and -v: identity, tenant, grant, expiry
$W $BIN $C --check > "$T/check.out" 2>&1; rc=$?
cat "$T/check.out" >> "$T/all.out"
[ $rc = 0 ] && grep -q 'identity relay@contoso.com, tenant contoso.onmicrosoft.com, client_id app-client, grant client_credentials' "$T/check.out" &&
	grep -q 'cached access token expires 20' "$T/check.out" && ok "--check shows identity, tenant, grant, expiry" ||
	fail "--check: $(cat "$T/check.out")"
grep -q 'grant client_credentials' "$T/run.out" && ok "-v shows the grant" || fail "-v: $(cat "$T/run.out")"
chmod 644 "$T/client.secret"
$W $BIN $C --check > "$T/check.out" 2>&1 && fail "--check took a world-readable client secret" ||
	ok "--check refuses a world-readable client secret"
queue1 3a
runq
[ "$RC" != 0 ] && [ "$(grep -c 'queue held:.*client.secret' "$T/run.out")" = 1 ] && [ "$(nq)" = 1 ] &&
	ok "world-readable client secret: queue held, one alert" || fail "unsafe secret: rc=$RC $(cat "$T/run.out")"
chmod 600 "$T/client.secret"
runq
[ "$(nq)" = 0 ] && has_eml 3a && ok "secret mode fixed: delivered" || fail "secret mode fixed: queue=$(nq)"

# --- the app has no rights on the mailbox: one refresh, then held
sendas '[]'
queue1 4; queue1 5
c0=$(ntok client_credentials)
runq
[ "$RC" != 0 ] && ok "refused: the run reports failure" || fail "refused: rc=$RC"
[ "$(ntok client_credentials)" = $((c0 + 1)) ] && ok "refused: exactly one forced refresh" ||
	fail "refused: token requests $c0 -> $(ntok client_credentials)"
[ "$(grep -c 'queue held:.*SMTP.SendAsApp' "$T/run.out")" = 1 ] && ok "refused: one alert naming SMTP.SendAsApp" ||
	fail "refused: alerts: $(cat "$T/run.out")"
[ "$(nq)" = 2 ] && [ -z "$(ls "$F")" ] && ok "refused: messages still queued, nothing failed" ||
	fail "refused: queue=$(nq) failed=$(ls "$F")"
grep -l '^Bounce: 1' "$Q"/*.env > /dev/null 2>&1 && fail "refused: a bounce was queued" || ok "refused: no bounce"
grep -q '^Attempts: 0$' "$Q"/*.env && ! grep -q '^Attempts: [1-9]' "$Q"/*.env && ok "refused: attempts not counted" ||
	fail "refused: $(grep Attempts "$Q"/*.env)"
sendas '["app-client"]'
runq
[ "$RC" = 0 ] && [ "$(nq)" = 0 ] && [ "$(neml)" = 6 ] && has_eml 4 && has_eml 5 &&
	ok "fixed: the next run delivers" || fail "fixed: rc=$RC queue=$(nq) eml=$(neml)"

# --- wrong client secret: invalid_client, held
printf 'wrong-secret\n' > "$T/client.secret"
rm -f "$S/access-token"
queue1 6
runq
[ "$(grep -c 'queue held:.*invalid_client.*client.secret' "$T/run.out")" = 1 ] && [ "$(nq)" = 1 ] &&
	ok "invalid_client: held, alert names the secret file" || fail "invalid_client: $(cat "$T/run.out")"
printf '%s\n' "$SECRET" > "$T/client.secret"
runq
[ "$(nq)" = 0 ] && has_eml 6 && ok "secret fixed: delivered" || fail "secret fixed: queue=$(nq)"

# --- --oauth-login without -v: what the user sees in each state
mkconf "$RT"
echo '{"user": "relay@contoso.com", "states": ["authorization_pending", "authorization_pending", "slow_down", "ok"]}' > "$T/state/device.json"
$W $BIN $C --oauth-login > "$T/login.out" 2>&1; rc=$?
cat "$T/login.out" >> "$T/all.out"
[ $rc = 0 ] && grep -q 'microsoft.com/devicelogin' "$T/login.out" && grep -q 'enter the code [A-Z0-9]\{9\}' "$T/login.out" &&
	ok "--oauth-login: URL and code" || fail "--oauth-login: rc=$rc $(cat "$T/login.out")"
# two pending answers a second apart: one "still waiting" line, not one per poll
[ "$(grep -c '^still waiting for the sign-in (the code expires in [0-9]*s)' "$T/login.out")" = 1 ] &&
	ok "--oauth-login: says it is still waiting, once" || fail "--oauth-login pending: $(cat "$T/login.out")"
grep -q '^the sign-in service asked to poll more slowly: now every 6s$' "$T/login.out" &&
	ok "--oauth-login: says slow_down and the new interval" || fail "--oauth-login slow_down: $(cat "$T/login.out")"
[ "$(tail -n 1 "$T/login.out")" = "signed in: the refresh token for relay@contoso.com is stored in $RTF" ] &&
	ok "--oauth-login: last line says where the token is stored" || fail "--oauth-login ok: $(cat "$T/login.out")"
grep -q 'authorization_pending\|DEBUG\|oauth: host=' "$T/login.out" && fail "--oauth-login printed debug lines without -v" ||
	ok "--oauth-login: no debug lines without -v"
[ "$(stat -c '%U %a' "$RTF" 2>/dev/null)" = "$QU 600" ] && ok "refresh token stored 0600 for the queue user" ||
	fail "refresh token file: $(stat -c '%U %a' "$RTF" 2>&1)"
sum0=$(sha256sum < "$RTF")
for st in authorization_declined expired_token; do
	echo "{\"user\": \"relay@contoso.com\", \"states\": [\"$st\"]}" > "$T/state/device.json"
	$W $BIN $C --oauth-login > "$T/login.out" 2>&1; rc=$?
	cat "$T/login.out" >> "$T/all.out"
	case $st in
	authorization_declined) want='^sign-in declined: nothing stored; run --oauth-login again' ;;
	*) want='^the code expired before the sign-in: nothing stored; run --oauth-login again' ;;
	esac
	[ $rc != 0 ] && grep -q "$want" "$T/login.out" && [ "$(sha256sum < "$RTF")" = "$sum0" ] &&
		ok "--oauth-login $st: says so, token file untouched" || fail "--oauth-login $st: rc=$rc $(cat "$T/login.out")"
done
# -v adds the token client's debug lines
echo '{"user": "relay@contoso.com", "states": ["authorization_declined"]}' > "$T/state/device.json"
$W $BIN $C -v --oauth-login > "$T/login.out" 2>&1
cat "$T/login.out" >> "$T/all.out"
grep -q 'error=authorization_declined' "$T/login.out" && ok "--oauth-login -v: the poll answers are logged" ||
	fail "--oauth-login -v: $(cat "$T/login.out")"
# the code runs out while the user has not signed in (a 3 s code, polled every 1 s)
sed -i 's/"device_interval": 1}/"device_interval": 1, "device_expires_in": 3}/' "$T/state/users.json"
echo '{"user": "relay@contoso.com", "states": ["authorization_pending", "authorization_pending", "authorization_pending", "authorization_pending"]}' > "$T/state/device.json"
$W $BIN $C --oauth-login > "$T/login.out" 2>&1; rc=$?
cat "$T/login.out" >> "$T/all.out"
[ $rc != 0 ] && grep -q '^no sign-in before the code expired: nothing stored; run --oauth-login again' "$T/login.out" &&
	grep -q '^still waiting for the sign-in' "$T/login.out" && [ "$(sha256sum < "$RTF")" = "$sum0" ] &&
	ok "--oauth-login: the code ran out while waiting: says so" || fail "--oauth-login code ran out: rc=$rc $(cat "$T/login.out")"
users 3599

# --- refresh token: delivered, the rotated token stored with its owner and mode
queue1 7
runq
[ "$RC" = 0 ] && [ "$(nq)" = 0 ] && has_eml 7 && ok "refresh token: delivered" || fail "refresh token: $(cat "$T/run.out")"
[ "$(sha256sum < "$RTF")" != "$sum0" ] && [ "$(stat -c '%U %a' "$RTF")" = "$QU 600" ] &&
	ok "refresh token: rotated token stored, owner and mode kept" || fail "refresh token: not rotated or $(stat -c '%U %a' "$RTF")"
grep -q 'identity relay@contoso.com.*grant refresh_token' "$T/run.out" && ok "-v: delegated grant shown" || fail "-v: $(cat "$T/run.out")"

# --- the cached token expires at the server in the middle of a run
queue1 8; queue1 9; queue1 10
$PY - "$T/state/tokens.json" <<'PY'
import json, os, sys
p = sys.argv[1]
t = json.load(open(p))
for v in t.values():
    v["expires_at"] = 0
json.dump(t, open(p + ".new", "w")); os.rename(p + ".new", p)
PY
r0=$(ntok refresh_token)
runq
[ "$RC" = 0 ] && [ "$(nq)" = 0 ] && has_eml 8 && has_eml 9 && has_eml 10 && [ "$(ntok refresh_token)" = $((r0 + 1)) ] &&
	ok "expired at the server: one refresh, nothing lost" || fail "expiry: rc=$RC queue=$(nq) $(cat "$T/run.out")"

# --- under the margin: a token valid for 5 minutes is never reused
users 300
rm -f "$S/access-token"
queue1 11; runq; queue1 12; runq
[ "$(nq)" = 0 ] && [ "$(ntok refresh_token)" = $((r0 + 3)) ] && ok "token under the 10 minute margin not reused" ||
	fail "margin: requests $(ntok refresh_token) want $((r0 + 3))"
users 3599

# --- two concurrent runners: no rotation lost
rm -f "$S/access-token"
for i in 13 14 15 16; do queue1 $i; done
$W $BIN $C -v -q > "$T/runA.out" 2>&1 & pa=$!
$W $BIN $C -v -q > "$T/runB.out" 2>&1 & pb=$!
wait $pa; ra=$?; wait $pb; rb=$?
cat "$T/runA.out" "$T/runB.out" >> "$T/all.out"
[ $ra = 0 ] && [ $rb = 0 ] && [ "$(nq)" = 0 ] && ! grep -q 700082 "$T/runA.out" "$T/runB.out" &&
	ok "two runners: all delivered, no AADSTS700082" || fail "two runners: $ra $rb queue=$(nq) $(cat "$T/runA.out" "$T/runB.out")"
rm -f "$S/access-token"
queue1 17; runq
[ "$RC" = 0 ] && has_eml 17 && ok "two runners: the stored refresh token still works" || fail "after two runners: $(cat "$T/run.out")"

# --- the refresh token refused (AADSTS700082): held, alert says --oauth-login
cp -p "$RTF" "$T/rt.keep"
printf '0.AXoA-not-a-valid-token\n' > "$RTF"
rm -f "$S/access-token"
queue1 18
runq
[ "$RC" != 0 ] && [ "$(grep -c 'queue held:.*AADSTS700082.*--oauth-login' "$T/run.out")" = 1 ] && [ "$(nq)" = 1 ] &&
	! grep -q '^Attempts: [1-9]' "$Q"/*.env && [ -z "$(ls "$F")" ] &&
	ok "AADSTS700082: held, one alert to run --oauth-login, no bounce" || fail "700082: $(cat "$T/run.out")"
cp -p "$T/rt.keep" "$RTF"
runq
[ "$(nq)" = 0 ] && has_eml 18 && ok "refresh token restored: delivered" || fail "restored: $(cat "$T/run.out")"

# --- no secret anywhere in what we printed or logged
$PY - "$T" "$SECRET" <<'PY' || FAILS=$((FAILS + 1))
import glob, json, os, sys
T, secret = sys.argv[1], sys.argv[2]
needles = [secret]
needles += list(json.load(open(os.path.join(T, "state", "tokens.json"))).keys())
needles += list(json.load(open(os.path.join(T, "state", "refresh.json"))).keys())
files = [os.path.join(T, "all.out"), os.path.join(T, "exo.log"), os.path.join(T, "init.out")]
files += glob.glob(os.path.join(T, "spool", "queue", "*")) + glob.glob(os.path.join(T, "spool", "failed", "*"))
files += glob.glob(os.path.join(T, "out", "*"))
bad = 0
for f in files:
    data = open(f, "rb").read().decode("utf-8", "replace")
    for n in needles:
        if n and n in data:
            print("FAIL: a secret (%d bytes) in %s" % (len(n), f)); bad += 1
print("ok: searched %d files for %d tokens, refresh tokens and the secret" % (len(files), len(needles)))
sys.exit(1 if bad else 0)
PY

[ $FAILS = 0 ] && echo "sendmail_xoauth2: all passed" || echo "sendmail_xoauth2: $FAILS failed"
[ $FAILS = 0 ]
