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
#   flow.per_minute                   -> a run stops at the limit, no 452
#   --hold/--release/--delete/--retry/--failed
#   4 runners, flow.connections 3, 1,000 messages: never a 432, every
#                                        message exactly once, each session in
#                                        queue order
# Runs as root (a per-run queue user is created and removed).
set -u
W=${O365_WRAP:-}
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
# the build-tree front end: it execs the build-tree runner (o365-sendmail
# would exec the installed one); with -C, as root, it behaves the same
BIN=$BUILD/sendmail-shim/o365-sendmail-test
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
mkconf() {	# mkconf PORT
	cat > "$T/sendmail.conf" <<CONF
smtp = { host = "localhost"; port = $1; timeout = 5; tls = "starttls"; helo = "web1.example.com"; };
tls = { ca_file = "$T/pki/ca.pem"; };
auth = { user = "relay@contoso.com"; password_file = "$T/secret"; mechanism = "login"; };
from = { address = "relay@contoso.com"; rewrite = "local"; };
queue = { dir = "$T/spool"; user = "$QU"; };
flow = { connections = 3; per_minute = $PM; };
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

# --- per_minute: a run stops at the limit instead of being refused
PM=5
rm -f "$T/spool/state/"*.flow	# forget the sends of the tests above
serve --basic-auth on --rate 5
for i in $(seq 10 17); do queue1 $i; done
: > "$T/run.out"; runner
[ "$(nout)" = 5 ] && [ "$(nq)" = 3 ] && ok "per_minute 5: 5 sent, 3 wait" || fail "rate: out $(nout) queue $(nq)"
grep -q ' 452 ' "$T/fake.log" && fail "the fake refused for rate" || ok "never over the server's rate"
grep -q 'status=waiting' "$T/run.out" && ok "the wait is logged" || fail "no wait logged"
wid=$(sed -n 's/.*: \([0-9a-f]\{26\}\): .*status=waiting.*/\1/p' "$T/run.out" | head -1)
[ -n "$wid" ] && grep -q '^Attempts: 0$' "$Q/$wid.env" && ok "a wait is no attempt" || fail "wait counted: $wid $(cat "$Q/$wid.env")"
cp "$T/run.out" "$T/rate.out"; rm -f "$Q"/*

# --- 1,000 messages, 4 runners, 3 connections
PM=2000
serve --basic-auth on --rate 2000 --max-conn 3
: > "$T/fake.log"
/usr/bin/python3 - "$Q" "$(id -u "$QU")" "$(id -g "$QU")" <<'PY' || fail "making 1000 messages"
import os, sys, time
q, uid, gid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t = int(time.time()) - 10
for i in range(1000):
    qid = "%010x%016x" % (t, i)
    body = ("From: relay@contoso.com\nTo: bob@example.org\nSubject: n%d\n"
            "Message-ID: <n%04d@example.org>\n\nbody %d\n" % (i, i, i)).encode()
    for name, data in ((qid + ".msg", body),
                       (qid + ".env", ("O365-Sendmail-Queue: 1\nId: %s\nUid: 0\nUser: root\n"
                        "Sender: root@example.org\nCreated: %d\nSize: %d\nAttempts: 0\n"
                        "Next-Try: 0\nBounce: 0\nEight-Bit: 0\nRcpt: bob@example.org\n"
                        % (qid, t, len(body))).encode())):
        p = os.path.join(q, name)
        with open(p, "wb") as f:
            f.write(data)
        os.chown(p, uid, gid)
        os.chmod(p, 0o600)
PY
: > "$T/run.out"
rp=()
for _ in 1 2 3 4; do runner & rp+=($!); done
for p in "${rp[@]}"; do wait "$p"; done	# not the fake: it is a child too
for _ in 1 2 3; do [ "$(nq)" = 0 ] && break; runner; done	# a runner that found no slot left some
[ "$(nq)" = 0 ] && ok "1000 messages drained" || fail "left in the queue: $(nq)"
[ "$(nout)" = 1000 ] && ok "1000 delivered" || fail "delivered $(nout)"
u=$(cat "$T/out"/*.eml | tr -d '\r' | sed -n 's/^Message-ID: <\(n[0-9]*\)@.*/\1/p' | sort -u | wc -l)
[ "$u" = 1000 ] && ok "no message lost or duplicated (1000 distinct Message-IDs)" || fail "distinct ids $u"
grep -q ' 432 \|Concurrent' "$T/fake.log" && fail "the connection limit was hit" || ok "never more than 3 connections"
grep -q ' 452 ' "$T/fake.log" && fail "the rate limit was hit" || ok "never over the rate"
# in queue order within each session
/usr/bin/python3 - "$T/fake.log" "$T/out" <<'PY' && ok "each session sent in queue order" || fail "out of order"
import re, sys, collections
per = collections.defaultdict(list)
for line in open(sys.argv[1]):
    m = re.match(r".*conn (\d+) deliver (\d+)", line)
    if m:
        text = open("%s/%s.eml" % (sys.argv[2], m.group(2)), "rb").read().decode()
        per[m.group(1)].append(int(re.search(r"Message-ID: <n(\d+)@", text).group(1)))
bad = [c for c, v in per.items() if v != sorted(v)]
print("sessions", len(per), "out of order", bad)
sys.exit(1 if bad or not per else 0)
PY

grep -q "$PASS" "$T/run.out" && fail "the password reached a log" || ok "password never logged"
unserve
[ $FAILS = 0 ] || { echo "$FAILS failure(s)"; [ -n "${KEEP:-}" ] && cp "$T/rate.out" "$T/fake.log" /tmp/i6/; exit 1; }
echo "all passed"
