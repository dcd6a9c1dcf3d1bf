#!/bin/bash
# sendmail_ratewait.sh: a per_minute wait is slept through whatever its length.
#   The flow state counts whole seconds and its rate window is 61 of them
#   (flow.h's SM_FLOW_RATE_WINDOW), so a message checked in the same second as
#   the send before it waits 61 s: the runner must sleep through that like
#   any shorter rate wait, not postpone the message and end the run (the
#   backlog would then drain one message per timer run).  flow.per_minute 1
#   and 4 queued messages: each one after the first usually comes in the
#   second of the one before (a transaction on loopback takes milliseconds).
#   One --queue-runner: exit 0, each message delivered once, the queue empty.
# Time: O365_TEST_MINUTE=6 (the runner's clock runs 10 times as fast: three
# waits of about 61 s take about 18 s).  Runs as root (a per-run queue user
# is created and removed).
set -u
W=${O365_WRAP:-}
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
TBIN=$BUILD/sendmail-shim/o365-sendmail-test
FAKE=$SRC/tests/fake/fake_exo_smtp.py
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 1; }
[ -x "$TBIN" ] || { echo "FAIL: $TBIN not built"; exit 1; }

export O365_TEST_MINUTE=6
O365_TEST_EPOCH=$(date +%s); export O365_TEST_EPOCH

T=$(mktemp -d /tmp/o365-rw.XXXXXX)
QU=o365r$$
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
PASS='Ratewait-pw-marker-7e1'
printf '%s\n' "$PASS" > "$T/secret"; chmod 600 "$T/secret"
echo '{}' > "$T/tokens.json"
printf '{"relay@contoso.com": {"sendas": [], "apps": [], "password": "%s"}}\n' "$PASS" > "$T/map.json"
mkconf() {	# mkconf PORT
	cat > "$T/sendmail.conf" <<CONF
smtp = { host = "localhost"; port = $1; timeout = 10; tls = "starttls"; helo = "web1.example.com"; };
tls = { ca_file = "$T/pki/ca.pem"; };
auth = { user = "relay@contoso.com"; password_file = "$T/secret"; mechanism = "login"; };
from = { address = "relay@contoso.com"; rewrite = "local"; };
queue = { dir = "$T/spool"; user = "$QU"; };
flow = { per_minute = 1; };
CONF
}
mkconf 9
C="-C $T/sendmail.conf"
$TBIN $C --init > /dev/null || { echo "FAIL: --init"; exit 1; }
Q=$T/spool/queue
nq() { ls "$Q"/*.env 2>/dev/null | wc -l; }

mkdir -p "$T/out"
/usr/bin/python3 "$FAKE" --cert "$T/pki/server" --tokens "$T/tokens.json" --outdir "$T/out" \
	--sendas-map "$T/map.json" --basic-auth on --rate 100 --log "$T/fake.log" --lifetime 180 \
	> "$T/fake.out" 2>&1 &
FPID=$!
for _ in $(seq 300); do grep -q "^PORT " "$T/fake.out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^PORT //p' "$T/fake.out")
[ -n "$port" ] || { echo "FAIL: fake did not start: $(cat "$T/fake.out")"; exit 1; }
mkconf "$port"

for i in 1 2 3 4; do
	printf 'Subject: rw%d\n\nbody %d\n' "$i" "$i" | $TBIN $C -odq bob@example.org ||
		fail "queueing message $i"
done
[ "$(nq)" = 4 ] && ok "four messages queued" || fail "$(nq) messages queued, not 4"

$W $TBIN $C --queue-runner > "$T/run.out" 2>&1; rc=$?
[ $rc = 0 ] && ok "runner: exit 0" || fail "runner: exit $rc: $(tail -3 "$T/run.out")"
[ "$(nq)" = 0 ] && ok "the rate waits were slept through: the queue is empty after one run" ||
	fail "$(nq) message(s) left queued after one run: $(grep -h '^Last-Error' "$Q"/*.env)"
n=$(grep -c ' deliver ' "$T/fake.log" 2>/dev/null)
[ "$n" = 4 ] && ok "each message delivered once" || fail "$n deliveries, not 4"
grep -qF "$PASS" "$T/run.out" && fail "the password reached the output" || ok "password never printed"

[ $FAILS = 0 ] || { echo "$FAILS failure(s)"; exit 1; }
echo "all passed"
