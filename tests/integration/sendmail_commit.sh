#!/bin/bash
# sendmail_commit.sh: a root submission's commit (sm_queue_commit) and what
# a crash in it leaves.  The commit writes and fsyncs <id>.msg and <id>.env
# under temporary names, renames .msg then .env, and fsyncs queue/ once.
#   - three flushes per -odq submission (strace), exit 0, a complete pair;
#   - killed after the .msg rename (test builds: O365_SENDMAIL_FAULT=
#     commit:kill-msg): a .msg without .env, never listed, never tried;
#     the runner keeps it while it is young and removes it once a minute old;
#   - stopped at that point (commit:stop-msg) it holds the .msg lock: the
#     runner's sweep leaves even an old-looking .msg alone; continued, it
#     completes (exit 0, a pair the runner tries);
#   - killed after both renames, before the queue/ fsync (commit:kill-pair):
#     a complete pair the runner tries (never half a message);
#   - a .env whose .msg a crash lost: never tried, removed once a minute old.
# Runs as root (a per-run queue user).  Needs no network: the relay is
# 127.0.0.1:9, so a delivery attempt fails and is recorded in the .env.
set -u
W=${O365_WRAP:-}	# the valgrind runner sets it
BUILD=$(cd "$1" && pwd)
BIN=$BUILD/sendmail-shim/o365-sendmail-test
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 1; }
[ -x "$BIN" ] || { echo "FAIL: $BIN not built"; exit 1; }

T=$(mktemp -d /tmp/o365-smc.XXXXXX)
chmod 755 "$T"
QU=o365c$$
FAILS=0
SPID=
cleanup() {
	[ -n "$SPID" ] && kill -9 "$SPID" 2>/dev/null
	userdel "$QU" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }

cat > "$T/sendmail.conf" <<CONF
smtp = { host = "127.0.0.1"; port = 9; timeout = 5; };
auth = { user = "relay@contoso.com"; password_file = "$T/secret"; };
from = { address = "relay@contoso.com"; };
queue = { dir = "$T/spool"; user = "$QU"; };
CONF
chmod 644 "$T/sendmail.conf"
printf 'S3cr3t\n' > "$T/secret"
chmod 600 "$T/secret"
C="-C $T/sendmail.conf"
Q=$T/spool/queue
$W $BIN $C --init > /dev/null || { echo "FAIL: --init"; exit 1; }

msg() { printf 'Subject: %s\n\nbody of %s\n' "$1" "$1"; }
ids() { ls "$Q" | sed -n "s/^\([0-9a-f]\{26\}\)\.$1\$/\1/p"; }	# ids EXT
runq() { $W $BIN $C -q > "$T/run.out" 2>&1; }	# fails to connect: fine
tried() { grep -q '^Attempts: [1-9]' "$Q/$1.env" 2>/dev/null; }
age() { touch -d '-2 minutes' "$1"; }

# --- an ordinary -odq: three flushes, a complete pair
# (LeakSanitizer cannot run under ptrace: the ASan build turns it off there)
command -v strace > /dev/null || { echo "FAIL: strace is missing (scripts/deps)"; exit 1; }
msg plain | env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" strace -f -qq -o "$T/strace" -e trace=fsync,fdatasync,syncfs,sync,sync_file_range \
	$BIN $C -odq someone@example.org; rc=$?
[ $rc = 0 ] && ok "-odq exit 0" || fail "-odq exit $rc"
n=$(grep -Ec '(fsync|fdatasync|syncfs|sync|sync_file_range)\(' "$T/strace")
[ "$n" = 3 ] && ok "three flushes per root submission" || fail "$n flushes: $(cat "$T/strace")"
id=$(ids env)
[ -n "$id" ] && [ -f "$Q/$id.msg" ] && [ -z "$(ls -A "$Q" | grep '^\.t')" ] && ok "a complete pair, no temp file" ||
	fail "queue after -odq: $(ls -A "$Q")"
rm -f "$Q"/*

# --- killed after the .msg rename: a .msg alone, never tried, swept when old
msg killed-msg | O365_SENDMAIL_FAULT=commit:kill-msg $BIN $C -odq someone@example.org; rc=$?
[ $rc = 137 ] && ok "killed after the .msg rename" || fail "kill-msg exit $rc"
m=$(ids msg)
[ -n "$m" ] && [ -z "$(ids env)" ] && ok "a .msg without .env is left" || fail "queue: $(ls -A "$Q")"
$W $BIN $C -bp 2>&1 | grep -q "$m" && fail "-bp lists the half pair" || ok "-bp does not list it"
runq
[ -f "$Q/$m.msg" ] && [ -z "$(ids env)" ] && ok "runner: a young .msg is kept, nothing tried" ||
	fail "runner changed a young half pair: $(ls -A "$Q")"
age "$Q/$m.msg"
runq
[ ! -e "$Q/$m.msg" ] && ok "runner: the old .msg without .env is removed" || fail "left: $(ls -A "$Q")"
# the .env it had written is still a temp file: those wait a day (a writer may be slow)
[ -f "$Q/.t$m.env" ] && ok "its temp .env is kept while young" || fail "temp .env: $(ls -A "$Q")"
touch -d '-2 days' "$Q/.t$m.env"
runq
[ -z "$(ls -A "$Q")" ] && ok "runner: a day-old temp file is removed" || fail "left: $(ls -A "$Q")"

# --- stopped after the .msg rename: its lock keeps the sweep off; it completes
msg stopped > "$T/stopped.eml"
O365_SENDMAIL_FAULT=commit:stop-msg $BIN $C -odq someone@example.org < "$T/stopped.eml" &
SPID=$!
for _ in $(seq 300); do [ "$(ps -o stat= -p $SPID 2>/dev/null | cut -c1)" = T ] && break; sleep 0.1; done
m=$(ids msg)
if [ "$(ps -o stat= -p $SPID | cut -c1)" = T ] && [ -n "$m" ]; then
	age "$Q/$m.msg"
	runq
	[ -f "$Q/$m.msg" ] && ok "runner: a .msg whose commit is in progress is kept (locked)" ||
		fail "the sweep removed the .msg of a commit in progress"
	kill -CONT $SPID
	wait $SPID; rc=$?
	SPID=
	[ $rc = 0 ] && [ -f "$Q/$m.env" ] && [ -f "$Q/$m.msg" ] && ok "continued: exit 0, a complete pair" ||
		fail "continued commit: exit $rc, queue $(ls -A "$Q")"
	runq
	tried "$m" && ok "runner: the completed message is tried" || fail "not tried: $(cat "$Q/$m.env")"
else
	fail "the submitter did not stop after the .msg rename"
fi
rm -f "$Q"/*

# --- killed after both renames, before the queue/ fsync: a complete pair
msg killed-pair | O365_SENDMAIL_FAULT=commit:kill-pair $BIN $C -odq someone@example.org; rc=$?
[ $rc = 137 ] && ok "killed after both renames" || fail "kill-pair exit $rc"
p=$(ids env)
[ -n "$p" ] && [ -f "$Q/$p.msg" ] && grep -q '^Subject: killed-pair' "$Q/$p.msg" && grep -q '^body of killed-pair' "$Q/$p.msg" &&
	ok "a complete message" || fail "queue: $(ls -A "$Q")"
runq
tried "$p" && ok "runner: the complete pair is tried" || fail "complete pair not tried"

# --- a .env whose .msg was lost (the file system kept only the second rename)
rm -f "$Q/$p.msg"
sed -i '/^Attempts:/d; /^Next-Try:/d' "$Q/$p.env"
runq
[ -f "$Q/$p.env" ] && ! tried "$p" && ok "runner: a young .env without .msg is kept, nothing tried" ||
	fail "runner changed a young .env without .msg: $(ls -A "$Q")"
age "$Q/$p.env"
runq
[ -z "$(ls -A "$Q")" ] && ok "runner: the old .env without .msg is removed" || fail "left: $(ls -A "$Q")"

[ $FAILS = 0 ] || { echo "$FAILS failure(s)"; exit 1; }
echo "all ok"
