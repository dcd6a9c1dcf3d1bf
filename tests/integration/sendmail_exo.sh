#!/bin/bash
# sendmail_exo.sh: issue 6 against tests/fake/fake_exo_smtp.py (the fake
# Exchange Online): reply actions, flow control and queue control.
#   535 5.7.139 (SMTP AUTH disabled)  -> the queue is held, one alert, no
#                                        bounce; mailq shows the hold; after
#                                        the fix --release ALL delivers all
#   SendAsDenied                      -> the message is held, not bounced, the
#                                        log names the setting; after a SendAs
#                                        grant --release ID delivers it
#   SubmissionQuotaExceeded           -> waits (Next-Try later), no bounce,
#                                        no attempt counted
#   421 greeting                      -> retried (attempt counted)
#   the slow schedule of a held queue  -> flow.hold_retry doubling up to
#                                        flow.hold_retry_max, one alert per
#                                        hold, -q starts it over, a delivery
#                                        ends the hold (O365_TEST_CLOCK_OFFSET
#                                        moves o365-sendmail-test's clock)
#   flow.per_minute                   -> a run sleeps through the rate wait
#                                        (the session closed meanwhile) and
#                                        sends everything, no 452
#                                        (O365_TEST_MINUTE: a 2 s minute)
#   a wait on an open session          -> NOOPs keep it past the fake's idle
#                                        timeout; one session for both
#                                        messages (skipped under $O365_WRAP:
#                                        the wait would be spent starting up)
#   --hold/--release/--delete/--retry/--failed
# (1,000 messages under the rate limit: sendmail_drain.sh.)
# Runs as root (a per-run queue user is created and removed).
set -u
W=${O365_WRAP:-}
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
# the build-tree front end: it execs the build-tree runner (o365-sendmail
# would exec the installed one); with -C, as root, it behaves the same
BIN=$BUILD/sendmail-shim/o365-sendmail-test
TBIN=$BIN	# its runner also reads the test clock (O365_TEST_*)
FAKE=$SRC/tests/fake/fake_exo_smtp.py
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 1; }
[ -x "$BIN" ] || { echo "FAIL: $BIN not built"; exit 1; }

T=$(mktemp -d /tmp/o365-exo.XXXXXX)
QU=o365e$$
FAILS=0
FPID=
cleanup() {
	[ -n "$FPID" ] && kill "$FPID" 2>/dev/null && wait "$FPID" 2>/dev/null
	userdel "$QU" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }

bash "$SRC/tests/fake/mkcerts.sh" "$T/pki" > /dev/null || { echo "FAIL: mkcerts"; exit 1; }
chmod 755 "$T" "$T/pki"; chmod 644 "$T/pki/ca.pem"
PASS='Exo-pw-marker-7f1'
printf '%s\n' "$PASS" > "$T/secret"; chmod 600 "$T/secret"
echo '{}' > "$T/tokens.json"
sendas() {	# sendas "LIST": the relay mailbox's SendAs grants
	printf '{"relay@contoso.com": {"sendas": [%s], "apps": [], "password": "%s"}}\n' "$1" "$PASS" > "$T/map.json"
}
sendas ''
PM=1000
HOLD=
mkconf() {	# mkconf PORT
	cat > "$T/sendmail.conf" <<CONF
smtp = { host = "localhost"; port = $1; timeout = 5; tls = "starttls"; helo = "web1.example.com"; };
tls = { ca_file = "$T/pki/ca.pem"; };
auth = { user = "relay@contoso.com"; password_file = "$T/secret"; mechanism = "login"; };
from = { address = "relay@contoso.com"; rewrite = "local"; };
queue = { dir = "$T/spool"; user = "$QU"; };
flow = { connections = 3; per_minute = $PM; $HOLD };
CONF
}
mkconf 9
C="-C $T/sendmail.conf"
$BIN $C --init > /dev/null || { echo "FAIL: --init"; exit 1; }
[ -d "$T/spool/state" ] && [ "$(stat -c %U "$T/spool/state")" = "$QU" ] && ok "--init makes state/ for the queue user" ||
	fail "state/ after --init"
Q=$T/spool/queue
F=$T/spool/failed

serve() {	# serve ARGS...: (re)start the fake with these options
	unserve
	rm -rf "$T/out"; mkdir -p "$T/out"
	/usr/bin/python3 "$FAKE" --cert "$T/pki/server" --tokens "$T/tokens.json" --outdir "$T/out" \
		--sendas-map "$T/map.json" --log "$T/fake.log" --lifetime 240 "$@" > "$T/fake.out" 2>&1 &
	FPID=$!
	for _ in $(seq 300); do grep -q "^PORT " "$T/fake.out" 2>/dev/null && break; sleep 0.1; done
	port=$(sed -n 's/^PORT //p' "$T/fake.out")
	[ -n "$port" ] || { fail "fake did not start: $(cat "$T/fake.out")"; return 1; }
	mkconf "$port"
}
unserve() { [ -n "$FPID" ] && { kill "$FPID" 2>/dev/null; wait "$FPID" 2>/dev/null; }; FPID=; }
runner() { $W $BIN $C --queue-runner -v >> "$T/run.out" 2>&1; }	# due ones only
msg() {	# msg N [FROM]
	printf 'From: %s\nTo: bob@example.org\nSubject: m%s\nMessage-ID: <m%s@example.org>\n\nbody %s\n' \
		"${2:-root}" "$1" "$1" "$1"
}
queue1() { msg "$@" | $BIN $C -odq -i bob@example.org || fail "queueing m$1"; }
nq() { ls "$Q"/*.env 2>/dev/null | wc -l; }
nout() { ls "$T/out"/*.eml 2>/dev/null | wc -l; }
envof() { grep -l "^Rcpt: bob@example.org" "$Q"/*.env 2>/dev/null | while read -r f; do
	grep -q "<m$1@" "${f%.env}.msg" && echo "$f"; done | head -1; }

# --- 535 5.7.139: the queue is held, one alert, nothing bounced
for i in 1 2 3; do queue1 $i; done
serve --basic-auth disabled
: > "$T/run.out"
runner; runner
[ "$(nq)" = 3 ] && [ -z "$(ls "$F")" ] && ok "535 5.7.139: all 3 kept, none failed" || fail "535: queue $(nq) failed $(ls "$F")"
[ "$(grep -c 'queue held (auth-disabled-tenant)' "$T/run.out")" = 1 ] && ok "535 5.7.139: exactly one alert" ||
	fail "alerts: $(grep -c 'queue held' "$T/run.out")"
grep -q 'Set-CASMailbox' "$T/run.out" && ok "the alert says what to fix" || fail "no advice in the alert"
[ "$(grep -c ' auth ' "$T/fake.log" 2>/dev/null; grep -c 'AUTH' "$T/fake.log")" ] 
na=$(grep -c 'C: AUTH' "$T/fake.log")
[ "$na" = 1 ] && ok "the held queue is not tried by the next runner" || fail "AUTH tried $na times"
grep -q '^Bounce: 1$' "$Q"/*.env && fail "a bounce was queued" || ok "no bounce"
grep -q '^Attempts: 0$' "$(envof 2)" && ok "no attempt counted for a held queue" || fail "attempts: $(cat "$(envof 2)")"
$BIN $C -bp > "$T/mailq" 2>&1
grep -q 'the queue is held.*5.7.139' "$T/mailq" && ok "mailq shows the queue hold and its reason" || fail "mailq: $(cat "$T/mailq")"
grep -q 'state queued, age .*attempts 0, next attempt' "$T/mailq" && ok "mailq shows state, age, attempts, next attempt" ||
	fail "mailq state: $(cat "$T/mailq")"
grep -q 'user=root' "$T/mailq" && ok "mailq shows the submitting user" || fail "mailq user"
# the fix: SMTP AUTH on; the admin releases the queue
serve --basic-auth on
$BIN $C --release ALL > "$T/ctl.out" 2>&1
grep -q 'queue hold is released' "$T/ctl.out" && ok "--release ALL ends the queue hold" || fail "release: $(cat "$T/ctl.out")"
: > "$T/run.out"; runner
[ "$(nq)" = 0 ] && [ "$(nout)" = 3 ] && ok "after the fix all 3 delivered" || fail "after fix: queue $(nq) out $(nout)"
grep -q 'queue resumed' "$T/run.out" && fail "resumed logged though released by root" || true

# --- SendAsDenied: the message is held, says which setting, released after a grant
queue1 4 app@contoso.com
: > "$T/run.out"; runner
E=$(envof 4)
[ -n "$E" ] && grep -q '^Held: 1$' "$E" && [ -z "$(ls "$F")" ] && ok "SendAsDenied: held, not bounced" || fail "SendAsDenied: $(cat "$E" 2>/dev/null)"
grep -q 'from.address' "$T/run.out" && grep -q 'SendAs' "$T/run.out" && ok "SendAsDenied: the log names the setting" ||
	fail "no advice: $(grep held "$T/run.out")"
$BIN $C -bp | grep -q 'state held' && ok "mailq shows state held" || fail "mailq held"
id=$(basename "$E" .env)
sendas '"app@contoso.com"'
$BIN $C --release "$id" | grep -q "$id: released" && ok "--release ID" || fail "--release $id"
runner
[ "$(nq)" = 0 ] && [ "$(nout)" = 4 ] && ok "after the SendAs grant it is delivered" || fail "sendas release: queue $(nq) out $(nout)"

# --- the daily quota: wait, no bounce, no attempt
queue1 5
serve --basic-auth on --fail quota
: > "$T/run.out"; runner
E=$(envof 5)
nt=$(sed -n 's/^Next-Try: //p' "$E" 2>/dev/null)
[ -n "$E" ] && [ -z "$(ls "$F")" ] && [ -n "$nt" ] && [ "$nt" -gt $(( $(date +%s) + 600 )) ] &&
	grep -q '^Attempts: 0$' "$E" && ok "quota: waits for the window, not bounced, no attempt" || fail "quota: $(cat "$E" 2>/dev/null)"
grep -q 'status=quota-wait' "$T/run.out" && ok "quota wait logged" || fail "quota log"

# --- 421 greeting: retried with backoff, attempt counted
serve --basic-auth on --fail greeting-421
$BIN $C --retry ALL > /dev/null
: > "$T/run.out"; runner
E=$(envof 5)
grep -q '^Attempts: 1$' "$E" && grep -q '^Last-Error: 421' "$E" && ok "421: retried later, attempt counted" || fail "421: $(cat "$E")"

# --- queue control
serve --basic-auth on
$BIN $C --hold ALL | grep -q '1 message held' && ok "--hold ALL" || fail "--hold ALL"
runner
[ "$(nq)" = 1 ] && ok "a held message stays" || fail "held message sent"
$BIN $C --release ALL > /dev/null; $BIN $C --retry ALL > /dev/null
runner
[ "$(nq)" = 0 ] && [ "$(nout)" = 1 ] && ok "--release + --retry: sent at the next run" || fail "retry: queue $(nq) out $(nout)"
queue1 6
id=$(basename "$(envof 6)" .env)
$BIN $C --delete "$id" | grep -q "$id: deleted" && [ "$(nq)" = 0 ] && ok "--delete ID" || fail "--delete"
$BIN $C --delete 0123456789abcdef0123456789 > /dev/null 2>&1; [ $? = 66 ] && ok "unknown id: EX_NOINPUT" || fail "unknown id exit"
$BIN $C --failed | grep -q 'No failed messages' && ok "--failed lists failed/" || fail "--failed"

# --- --probe: greeting, TLS, AUTH, no mail; a refused AUTH says what to fix
serve --basic-auth on
$W $BIN $C --probe > "$T/probe.out" 2>&1; rc=$?
[ $rc = 0 ] && grep -q '^ *S: 220 ' "$T/probe.out" && grep -qi 'TLSv1' "$T/probe.out" && grep -q '235 2.7.0' "$T/probe.out" &&
	ok "--probe: greeting, TLS, AUTH accepted, exit 0" || fail "--probe ($rc): $(cat "$T/probe.out")"
grep -q 'MAIL FROM' "$T/probe.out" && fail "--probe sent MAIL" || ok "--probe sends no mail"
grep -q "$PASS" "$T/probe.out" && fail "--probe printed the password" || ok "--probe masks the password"
serve --basic-auth disabled
$W $BIN $C --probe > "$T/probe.out" 2>&1; rc=$?
[ $rc = 69 ] && grep -q '5.7.139' "$T/probe.out" && grep -q 'Set-CASMailbox' "$T/probe.out" &&
	ok "--probe: 535 5.7.139 -> EX_UNAVAILABLE with the advice" || fail "--probe refused ($rc): $(tail -5 "$T/probe.out")"
$BIN $C --release ALL > /dev/null

# --- --check: says exactly what is wrong
chmod 666 "$T/sendmail.conf"
$BIN $C --check > "$T/check.out" 2>&1; rc=$?
[ $rc = 78 ] && grep -q 'writable by everyone' "$T/check.out" && ok "--check: a world-writable config" ||
	fail "--check conf ($rc): $(cat "$T/check.out")"
chmod 644 "$T/sendmail.conf"; chmod 644 "$T/secret"
$BIN $C --check > "$T/check.out" 2>&1; rc=$?
[ $rc = 78 ] && grep -q "$T/secret" "$T/check.out" && ok "--check: a readable secret file" ||
	fail "--check secret ($rc): $(cat "$T/check.out")"
chmod 600 "$T/secret"
$BIN $C --check > "$T/check.out" 2>&1 && grep -q 'config ok' "$T/check.out" && ok "--check: ok when fixed" ||
	fail "--check ok: $(cat "$T/check.out")"

# --- the slow schedule: 600 s doubling to 1500 s (flow.hold_retry*), one alert
HOLD='hold_retry = 600; hold_retry_max = 1500;'
serve --basic-auth disabled
: > "$T/fake.log"
queue1 30
NOW=$(date +%s)
trun() {	# trun OFFSET [ARGS]: o365-sendmail-test with its clock OFFSET s ahead
	local off=$1; shift
	: > "$T/run.out"
	O365_TEST_CLOCK_OFFSET=$(( off + NOW - $(date +%s) )) $W $TBIN $C -v "${@:---queue-runner}" >> "$T/run.out" 2>&1
	cat "$T/run.out" >> "$T/hold.out"
}
next_in() { grep -qE "next try in ($(( $1 - 1 ))|$1|$(( $1 + 1 )))s" "$T/run.out"; }
auths() { grep -c 'C: AUTH' "$T/fake.log"; }
: > "$T/hold.out"
trun 0
grep -q 'queue held (auth-disabled-tenant)' "$T/run.out" && ok "hold: the first failure alerts" || fail "hold: $(cat "$T/run.out")"
grep -q '^holdtries 1$' "$T/spool/state/"*.flow && ok "hold: the state counts the tries" || fail "hold state: $(cat "$T/spool/state/"*.flow)"
trun 300
[ "$(auths)" = 1 ] && ok "hold: not tried before flow.hold_retry (600 s)" || fail "hold: AUTH tried $(auths) times at +300 s"
trun 610
[ "$(auths)" = 2 ] && next_in 1200 && ok "hold: tried again after 600 s, next after 1200 s (doubled)" ||
	fail "hold +610: auths $(auths): $(cat "$T/run.out")"
trun 1820
[ "$(auths)" = 3 ] && next_in 1500 && ok "hold: capped at flow.hold_retry_max (1500 s)" || fail "hold +1820: $(cat "$T/run.out")"
trun 3330
[ "$(auths)" = 4 ] && next_in 1500 && ok "hold: stays at the cap" || fail "hold +3330: $(cat "$T/run.out")"
[ "$(grep -c 'queue held (' "$T/hold.out")" = 1 ] && ok "hold: one alert for the whole hold, not one per try" ||
	fail "hold alerts: $(grep -c 'queue held (' "$T/hold.out")"
trun 3340 -q
[ "$(auths)" = 5 ] && next_in 600 && ok "hold: -q tries now and starts the schedule over" || fail "hold -q: $(cat "$T/run.out")"
[ -z "$(ls "$F")" ] && [ "$(nq)" = 1 ] && grep -q '^Attempts: 0$' "$(envof 30)" && ok "hold: nothing failed, no attempt counted" ||
	fail "hold: failed $(ls "$F") queue $(nq)"
serve --basic-auth on
trun 3950
[ "$(nq)" = 0 ] && [ "$(nout)" = 1 ] && grep -q 'queue resumed' "$T/run.out" && ok "hold: delivered at the next try, queue resumed" ||
	fail "hold fixed: queue $(nq) out $(nout): $(cat "$T/run.out")"
grep -q '^hold' "$T/spool/state/"*.flow && fail "hold: still recorded after a delivery" || ok "hold: a delivery ends the hold"
serve --basic-auth disabled
queue1 31
trun 3960
grep -q 'queue held (auth-disabled-tenant)' "$T/run.out" && next_in 600 && ok "hold: a new hold alerts again, from 600 s" ||
	fail "new hold: $(cat "$T/run.out")"
$BIN $C --release ALL > /dev/null
grep -q '^hold' "$T/spool/state/"*.flow && fail "hold: still recorded after --release ALL" || ok "hold: --release ALL ends it"
HOLD=
serve --basic-auth on
$BIN $C --delete ALL > /dev/null

# --- per_minute: a run sleeps through the rate wait instead of being refused
PM=5
rm -f "$T/spool/state/"*.flow	# forget the sends of the tests above
serve --basic-auth on --rate 5 --minute 1.966	# one test-second short of the 2 s minute
: > "$T/fake.log"
for i in $(seq 10 17); do queue1 $i; done
: > "$T/run.out"
O365_TEST_MINUTE=2 $W $TBIN $C --queue-runner -v >> "$T/run.out" 2>&1
[ "$(nout)" = 8 ] && [ "$(nq)" = 0 ] && ok "per_minute 5: all 8 sent in one run" || fail "rate: out $(nout) queue $(nq)"
grep -q ' 452 ' "$T/fake.log" && fail "the fake refused for rate" || ok "never over the server's rate"
grep -q 'draining at flow.per_minute = 5' "$T/run.out" && ok "the wait is logged" || fail "no wait logged"
grep -q 'closing the session meanwhile' "$T/run.out" && [ "$(grep -c ' open [0-9]*$' "$T/fake.log")" = 2 ] &&
	[ "$(grep -c 'C: QUIT' "$T/fake.log")" = 2 ] && ok "a long wait: QUIT, then a new session" ||
	fail "long wait: $(grep -c ' open' "$T/fake.log") sessions"
grep -q '^Attempts: [1-9]' "$Q"/*.env 2>/dev/null && fail "a wait counted as an attempt" || ok "a wait is no attempt"
cp "$T/run.out" "$T/rate.out"; rm -f "$Q"/*

# --- a wait of 15..30 s on an open session: NOOP every 15 s, no reconnect.
# per_minute 2 with one send 34 s ago in the state: the first message goes,
# the second waits about 27 s; the fake drops a session idle for 20 s; a
# minute lasts 6 s (clock x10).
if [ -z "$W" ]; then
	PM=2
	serve --basic-auth on --rate 2 --minute 5.9 --idle-timeout 2.0
	: > "$T/fake.log"
	for i in 20 21; do queue1 $i; done
	E0=$(date +%s)
	fl=$T/spool/state/relay@contoso.com.flow
	/usr/bin/python3 - "$fl" "$E0" <<'PY' || fail "writing the flow state"
import sys, time
path, e = sys.argv[1], int(sys.argv[2])
now = e + int((time.time() - e) * 10)	# testclock.c with O365_TEST_MINUTE=6
open(path, "w").write("o365-flow 1\nm %d\n" % (now - 34))
PY
	chown "$QU:$QU" "$fl"
	: > "$T/run.out"
	O365_TEST_MINUTE=6 O365_TEST_EPOCH=$E0 $TBIN $C --queue-runner -v >> "$T/run.out" 2>&1
	[ "$(nout)" = 2 ] && [ "$(nq)" = 0 ] && ok "noop: both sent" || fail "noop: out $(nout) queue $(nq)"
	grep -q 'C: NOOP' "$T/fake.log" && [ "$(grep -c ' open [0-9]*$' "$T/fake.log")" = 1 ] &&
		! grep -q 'idle timeout' "$T/fake.log" && ok "noop: the session kept alive through the wait" ||
		fail "noop: $(grep -c ' open' "$T/fake.log") sessions: $(grep -v ' C: \(RCPT\|DATA\)' "$T/fake.log" | tail -12)"
	rm -f "$Q"/*
fi

grep -q "$PASS" "$T/run.out" && fail "the password reached a log" || ok "password never logged"
unserve
[ $FAILS = 0 ] || { echo "$FAILS failure(s)"; [ -n "${KEEP:-}" ] && cp "$T/rate.out" "$T/fake.log" /tmp/i6/; exit 1; }
echo "all passed"
