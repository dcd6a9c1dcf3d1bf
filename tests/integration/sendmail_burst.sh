#!/bin/bash
# sendmail_burst.sh: the default mode (-odb) under a burst, against
# tests/fake/fake_exo_smtp.py (STARTTLS, AUTH LOGIN).
#   - a submitter starts no runner while another holds the runner lock
#     (state/runner.lock; strace: no execve of the runner), and starts one
#     when the lock is free; that runner sends both messages;
#   - many concurrent default-mode submitters racing the runners they start:
#     every message arrives exactly once, without any -q or timer run, and
#     the queue ends empty; RSET before every message but a session's first.
# Runs as root (a per-run queue user).
set -u
W=${O365_WRAP:-}	# the valgrind runner sets it
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
BIN=$BUILD/sendmail-shim/o365-sendmail-test
RUNNER=$BUILD/sendmail-shim/o365-sendmail-runner-test
FAKE=$SRC/tests/fake/fake_exo_smtp.py
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 1; }
[ -x "$BIN" ] && [ -x "$RUNNER" ] || { echo "FAIL: $BIN or $RUNNER not built"; exit 1; }
# (LeakSanitizer cannot run under ptrace: the ASan build turns it off there)
command -v strace > /dev/null || { echo "FAIL: strace is missing (scripts/deps)"; exit 1; }

T=$(mktemp -d /tmp/o365-smb.XXXXXX)
QU=o365b$$
FAILS=0
FPID=
cleanup() {
	exec 9>&- 2>/dev/null
	[ -n "$FPID" ] && kill "$FPID" 2>/dev/null && wait "$FPID" 2>/dev/null
	# runners started by the submissions end by themselves; wait for them
	for _ in $(seq 300); do pgrep -f "$RUNNER" > /dev/null || break; sleep 0.1; done
	userdel "$QU" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }

bash "$SRC/tests/fake/mkcerts.sh" "$T/pki" > /dev/null || { echo "FAIL: mkcerts"; exit 1; }
chmod 755 "$T" "$T/pki"; chmod 644 "$T/pki/ca.pem"
PASS='Burst-pw-marker-3c9'
printf '%s\n' "$PASS" > "$T/secret"; chmod 600 "$T/secret"
echo '{}' > "$T/tokens.json"
printf '{"relay@contoso.com": {"sendas": [], "apps": [], "password": "%s"}}\n' "$PASS" > "$T/map.json"
TMO=10
[ -n "$W" ] && TMO=60
mkconf() {	# mkconf PORT
	cat > "$T/sendmail.conf" <<CONF
smtp = { host = "localhost"; port = $1; timeout = $TMO; tls = "starttls"; helo = "web1.example.com"; };
tls = { ca_file = "$T/pki/ca.pem"; };
auth = { user = "relay@contoso.com"; password_file = "$T/secret"; mechanism = "login"; };
from = { address = "relay@contoso.com"; rewrite = "always"; };
queue = { dir = "$T/spool"; user = "$QU"; };
flow = { connections = 3; per_minute = 10000; };
CONF
}
mkconf 9
C="-C $T/sendmail.conf"
$BIN $C --init > /dev/null || { echo "FAIL: --init"; exit 1; }
Q=$T/spool/queue
OUT=$T/out
mkdir -p "$OUT"
/usr/bin/python3 "$FAKE" --cert "$T/pki/server" --tokens "$T/tokens.json" --outdir "$OUT" \
	--sendas-map "$T/map.json" --basic-auth on --rate 100000 --max-conn 3 --log "$T/fake.log" \
	--lifetime 300 > "$T/fake.out" 2>&1 &
FPID=$!
for _ in $(seq 300); do grep -q "^PORT " "$T/fake.out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^PORT //p' "$T/fake.out")
[ -n "$port" ] || { echo "FAIL: fake did not start: $(cat "$T/fake.out")"; exit 1; }
mkconf "$port"

msg() { printf 'To: bob@example.org\nSubject: burst %s\n\nbody %s\n' "$1" "$1"; }
count() { ls "$OUT" 2>/dev/null | grep -c '\.eml$'; }
wait_count() {	# wait_count N: until N messages arrived (bounded: 120 s, valgrind 600 s)
	local lim=1200
	[ -n "$W" ] && lim=6000
	for _ in $(seq $lim); do
		[ "$(count)" -ge "$1" ] && return 0
		sleep 0.1
	done
	return 1
}
queued() { ls "$Q" | grep -c '\.env$'; }
runner_execs() { grep -c "execve(\"$RUNNER\"" "$1"; }

# --- the runner lock held (as by a runner draining the queue): no runner started
LOCK=$T/spool/state/runner.lock
install -o "$QU" -g "$QU" -m 600 /dev/null "$LOCK"
exec 9<> "$LOCK"
flock -n 9 || fail "cannot take the runner lock for the test"
msg held | env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" strace -f -qq -e trace=execve -o "$T/st1" $BIN $C -i bob@example.org; rc=$?
[ $rc = 0 ] && ok "-odb with the lock held: exit 0" || fail "-odb exit $rc"
[ "$(runner_execs "$T/st1")" = 0 ] && ok "lock held: no runner started" ||
	fail "lock held: runner started: $(grep execve "$T/st1")"
[ "$(queued)" = 1 ] && ok "the message waits in the queue for the lock holder" || fail "queued: $(queued)"
exec 9>&-

# --- the lock free: the next submission starts a runner, which sends both
msg free | env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" strace -f -qq -e trace=execve -o "$T/st2" $BIN $C -i bob@example.org; rc=$?
[ $rc = 0 ] && ok "-odb with the lock free: exit 0" || fail "-odb exit $rc"
[ "$(runner_execs "$T/st2")" = 1 ] && ok "lock free: one runner started" ||
	fail "lock free: $(runner_execs "$T/st2") runner execs"
wait_count 2 && ok "both messages arrived" || fail "arrived: $(count) of 2"
grep -q "^Subject: burst held" "$OUT"/*.eml && grep -q "^Subject: burst free" "$OUT"/*.eml &&
	ok "the waiting message went with the new one" || fail "subjects: $(grep -h '^Subject' "$OUT"/*.eml)"

# --- a burst: 4 submitters x 15 messages in the default mode, no -q
N=60
SUBS=()
for k in 1 2 3 4; do
	(for j in $(seq 15); do
		msg "r$k-$j" | $W $BIN $C -i bob@example.org || echo "submit r$k-$j failed" >> "$T/subfail"
	done) &
	SUBS+=($!)
done
wait "${SUBS[@]}"
[ ! -s "$T/subfail" ] && ok "$N default-mode submissions: exit 0" || fail "$(cat "$T/subfail")"
wait_count $((N + 2)) && ok "all $N arrived without a queue run" || fail "arrived: $(($(count) - 2)) of $N"
dups=$(grep -h '^Subject: burst r' "$OUT"/*.eml | sort | uniq -d | wc -l)
got=$(grep -h '^Subject: burst r' "$OUT"/*.eml | sort -u | wc -l)
[ "$got" = $N ] && [ "$dups" = 0 ] && ok "each exactly once" || fail "distinct $got, duplicated $dups"
for _ in $(seq 300); do [ "$(queued)" = 0 ] && break; sleep 0.1; done
[ "$(queued)" = 0 ] && ok "the queue is empty" || fail "left in the queue: $(queued)"
sessions=$(grep -c 'C: AUTH LOGIN' "$T/fake.log")
echo "info: $sessions SMTP sessions for $((N + 2)) messages"
# RSET (pipelined: the fake offers PIPELINING) before each message but a session's first
mails=$(grep -c 'C: MAIL FROM' "$T/fake.log")
rsets=$(grep -c 'C: RSET' "$T/fake.log")
[ "$rsets" = $((mails - sessions)) ] && [ "$rsets" -gt 0 ] && ok "RSET between messages ($rsets)" ||
	fail "$rsets RSET for $mails messages in $sessions sessions"

[ $FAILS = 0 ] || { echo "$FAILS failure(s)"; exit 1; }
echo "all ok"
