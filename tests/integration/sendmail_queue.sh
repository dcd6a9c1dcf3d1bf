#!/bin/bash
# sendmail_queue.sh: intake, queue layout, privileges, full disk, kill -9.
# Runs as root (creates and removes a queue user and an ordinary user).
# Needs no network: deliveries are only queued (-odq) or fail to connect.
set -u
W=${O365_WRAP:-}	# the valgrind runner sets it
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
# the build-tree front end: it execs the build-tree runner (o365-sendmail
# would exec the installed one); with -C, as root, it behaves the same
BIN=$BUILD/sendmail-shim/o365-sendmail-test
TBIN=$BUILD/sendmail-shim/o365-sendmail-test
TCONF=$BUILD/sendmail-test/sendmail.conf
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 1; }
[ -x "$BIN" ] && [ -x "$TBIN" ] || { echo "FAIL: $BIN or $TBIN not built"; exit 1; }

T=$(mktemp -d /tmp/o365-smq.XXXXXX)
chmod 755 "$T"
QU=o365q$$		# queue user for this run
SU=o365u$$		# an ordinary submitter
FAILS=0
MNT=
cleanup() {
	[ -n "$MNT" ] && umount "$MNT" 2>/dev/null
	userdel "$QU" 2>/dev/null
	userdel "$SU" 2>/dev/null
	rm -rf "$T" "$BUILD/sendmail-test"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }
as_user() { setpriv --reuid="$SU" --regid="$SU" --init-groups --no-new-privs "$@"; }

mkconf() {	# mkconf FILE QUEUEDIR
	cat > "$1" <<CONF
smtp = { host = "127.0.0.1"; port = 9; timeout = 5; };
auth = { user = "relay@contoso.com"; password_file = "$T/secret"; };
from = { address = "relay@contoso.com"; rewrite = "local"; };
queue = { dir = "$2"; user = "$QU"; };
aliases = { root = "admin@contoso.com"; };
CONF
	chmod 644 "$1"
}
printf 'S3cr3t-marker-7781\n' > "$T/secret"
chmod 600 "$T/secret"
mkconf "$T/sendmail.conf" "$T/spool"
mkdir -p "$BUILD/sendmail-test"
mkconf "$TCONF" "$T/spool"
C="-C $T/sendmail.conf"

# --- --init creates the user and the tree, and is idempotent
$W $BIN $C --init > "$T/init.out" 2>&1 || fail "--init: $(cat "$T/init.out")"
id "$QU" > /dev/null 2>&1 && ok "--init created $QU" || fail "queue user not created"
[ "$(stat -c %a:%U "$T/spool/incoming")" = "1733:$QU" ] && ok "incoming/ 1733" || fail "incoming mode $(stat -c %a:%U "$T/spool/incoming")"
[ "$(stat -c %a:%U "$T/spool/queue")" = "700:$QU" ] && ok "queue/ 0700" || fail "queue mode"
chmod 777 "$T/spool/queue"
$W $BIN $C --init > /dev/null 2>&1 || fail "second --init"
[ "$(stat -c %a "$T/spool/queue")" = 700 ] && ok "--init repairs modes" || fail "--init did not repair"

# --- usage errors send nothing
echo x | $W $BIN $C -odq -Z root; rc=$?
[ $rc = 64 ] && ok "unknown option: EX_USAGE" || fail "unknown option exit $rc"
echo x | $W $BIN $C -odq -bd; rc=$?
[ $rc = 64 ] && ok "unknown mode: EX_USAGE" || fail "-bd exit $rc"
echo x | $W $BIN $C -odq -f "$(printf 'a@b\nBcc: x@y')" root; rc=$?
[ $rc = 65 ] && ok "-f with a line break: EX_DATAERR" || fail "-f injection exit $rc"
[ -z "$(ls "$T/spool/queue")" ] && ok "nothing queued by usage errors" || fail "usage error queued something"

# --- root submission, -t, Bcc removed, From rewritten, headers added
printf 'To: bob@example.org, root\nBcc: hidden@example.org\nSubject: t1\n\nline1\n.\nline after dot\n' |
	$W $BIN $C -odq -t -i -FCronDaemon; rc=$?
[ $rc = 0 ] && ok "root -t submission" || fail "root submission exit $rc"
ENV=$(ls "$T/spool/queue"/*.env 2>/dev/null | head -1)
MSG=${ENV%.env}.msg
if [ -n "$ENV" ]; then
	grep -q '^Rcpt: bob@example.org$' "$ENV" && grep -q '^Rcpt: admin@contoso.com$' "$ENV" &&
		grep -q '^Rcpt: hidden@example.org$' "$ENV" && ok "envelope: -t recipients, aliases" ||
		fail "envelope: $(cat "$ENV")"
	grep -qi '^Bcc:' "$MSG" && fail "Bcc still in the message" || ok "Bcc removed"
	grep -q '^From: "CronDaemon (root@' "$MSG" && grep -q '<relay@contoso.com>$' "$MSG" &&
		ok "From rewritten" || fail "From: $(grep ^From: "$MSG")"
	grep -q '^Date: ' "$MSG" && grep -q '^Message-ID: <' "$MSG" && ok "Date, Message-ID added" || fail "no Date/Message-ID"
	grep -q '^line after dot$' "$MSG" && ok "-i keeps the dot line" || fail "-i: body cut"
	[ "$(stat -c %a:%U "$MSG")" = "600:$QU" ] && ok ".msg 0600 queue user" || fail ".msg $(stat -c %a:%U "$MSG")"
else
	fail "nothing queued"
fi
$W $BIN $C -bp > "$T/bp.out" 2>&1 && grep -q 'bob@example.org' "$T/bp.out" && ok "-bp lists it" || fail "-bp: $(cat "$T/bp.out")"
# without -i a lone dot ends the message
printf 'Subject: t2\n\nkept\n.\ndropped\n' | $W $BIN $C -odq someone@example.org || fail "t2 exit"
M2=$(grep -l '^Subject: t2' "$T/spool/queue"/*.msg)
grep -q '^dropped' "$M2" && fail "dot did not end the message" || ok "dot ends the message without -i"

# -bv: what would happen, nothing sent
$W $BIN $C -bv root bob@example.org > "$T/bv.out" 2>&1 && grep -q '^root -> admin@contoso.com' "$T/bv.out" &&
	grep -q '^bob@example.org -> bob@example.org' "$T/bv.out" && ok "-bv shows aliasing" || fail "-bv: $(cat "$T/bv.out")"
# unattended-upgrades / smartd: -oi -t, and a recipient that starts with '-'
printf 'To: ops@example.org\nSubject: uu\n\nx\n' | $W $BIN $C -odq -oi -t -- -dash@example.org || fail "-oi -t --"
E=$(grep -l '^Rcpt: -dash@example.org$' "$T/spool/queue"/*.env 2>/dev/null)
[ -n "$E" ] && grep -q '^Rcpt: ops@example.org$' "$E" && ok "-oi -t plus a '-' recipient after --" || fail "-t --: $(cat $E 2>/dev/null)"

# --- an ordinary user
useradd --no-create-home --shell /usr/sbin/nologin "$SU" || fail "useradd $SU"
printf 'Subject: from a user\n\nhello\n' | as_user $W "$TBIN" -odq root; rc=$?
[ $rc = 0 ] && ok "user submission accepted" || fail "user submission exit $rc"
ndrop=$(find "$T/spool/incoming" -name 'm*' -user "$SU" | wc -l)
[ "$ndrop" = 1 ] && ok "one drop owned by $SU" || fail "drops: $ndrop"
$W $BIN $C -bp 2>&1 | grep -q '^-- 1 submission waiting in incoming/' && ok "-bp counts waiting submissions" || fail "-bp: no waiting count"
as_user ls "$T/spool/incoming" > /dev/null 2>&1 && fail "user can list incoming/" || ok "user cannot list incoming/"
as_user cat "$T/secret" > /dev/null 2>&1 && fail "user can read the secret" || ok "user cannot read the secret"
as_user cat "$MSG" > /dev/null 2>&1 && fail "user can read root's queued mail" || ok "user cannot read queued mail"
as_user $W "$TBIN" -C "$T/sendmail.conf" -odq root < /dev/null; rc=$?
[ $rc = 64 ] && ok "user -C refused (EX_USAGE)" || fail "user -C exit $rc"
as_user $W "$TBIN" -bp > /dev/null 2>&1; rc=$?
[ $rc = 77 ] && ok "user -bp refused (EX_NOPERM)" || fail "user -bp exit $rc"
as_user $W "$TBIN" -q > /dev/null 2>&1; rc=$?
[ $rc = 77 ] && ok "user -q refused" || fail "user -q exit $rc"
# plants: a symlink to /etc/shadow, and a hard link to the user's own file
as_user ln -s /etc/shadow "$T/spool/incoming/m0123456789abcdef0123456789abcdef" 2>/dev/null || fail "symlink plant"
as_user sh -c "printf 'O365-Sendmail-Queue: 1\nRcpt: evil@example.org\n\nx\n' > /tmp/o365-own-$SU && ln /tmp/o365-own-$SU $T/spool/incoming/m1123456789abcdef0123456789abcdef" 2>/dev/null ||
	fail "hard link plant"
# What following the link would do to /etc/shadow: read it into the queue,
# or chown/chmod/remove it.  (Its bytes are no measure: other tests running
# at the same time add users, which rewrites it.)
SHADOW_META=$(stat -c '%a %u %g %F' /etc/shadow)
SHADOW_LINE=$(head -n1 /etc/shadow | cut -d: -f1-2)
$W $BIN $C --queue-runner > "$T/run.out" 2>&1	# pickup; delivery fails (nothing listens on port 9)
rm -f "/tmp/o365-own-$SU"
[ -z "$(ls -A "$T/spool/incoming")" ] && ok "incoming/ emptied by pickup" || fail "incoming: $(ls -A "$T/spool/incoming")"
grep -l "^Uid: $(id -u "$SU")\$" "$T/spool/queue"/*.env > /dev/null 2>&1 && ok "user message queued with the kernel's uid" ||
	fail "user message not picked up"
grep -l 'evil@example.org' "$T/spool/queue"/*.env > /dev/null 2>&1 && fail "a planted link was picked up" || ok "planted links refused"
[ "$(stat -c '%a %u %g %F' /etc/shadow)" = "$SHADOW_META" ] && ok "/etc/shadow: owner and mode untouched" ||
	fail "/etc/shadow: owner or mode changed"
grep -rqF -- "$SHADOW_LINE" "$T/spool" 2>/dev/null && fail "/etc/shadow's content reached the spool" ||
	ok "/etc/shadow's content not in the spool"
grep -q "S3cr3t-marker-7781" "$T/run.out" && fail "secret in output" || ok "secret never printed"
grep -q '^Attempts: 1$' "$T/spool/queue"/*.env && ok "failed attempt recorded" || fail "no attempt recorded"

# a message older than queue.max_age is failed and reported once, not retried
OLD=$(grep -l '^Subject: t2' "$T/spool/queue"/*.msg)
OLD=${OLD%.msg}
sed -i 's/^Created: .*/Created: 1000000000/' "$OLD.env"
$W $BIN $C -v -q > "$T/run2.out" 2>&1
[ -f "$T/spool/failed/${OLD##*/}.env" ] && ok "expired message moved to failed/" || fail "expired: $(ls "$T/spool/failed")"
grep -q 'status=expired' "$T/run2.out" && ok "expiry logged" || fail "no expiry line: $(cat "$T/run2.out")"
grep -l '^Bounce: 1$' "$T/spool/queue"/*.env > /dev/null 2>&1 && ok "expiry reported to the sender" || fail "no report for the expired message"

# --- a 60 MB message is streamed, never held: peak RSS stays far below it
if [ -z "$W" ] && [ -x /usr/bin/time ]; then
	{ printf 'Subject: big\n\n'; head -c 45000000 /dev/zero | base64 -w 76; } > "$T/big60"
	/usr/bin/time -f '%M' -o "$T/rss" $BIN $C -odq big@example.org < "$T/big60" || fail "60 MB submission"
	rss=$(tail -1 "$T/rss")
	[ "$rss" -lt 40000 ] && ok "60 MB message queued with ${rss} KB peak RSS" || fail "peak RSS ${rss} KB"
	BE=$(grep -l '^Rcpt: big@example.org$' "$T/spool/queue"/*.env)
	rm -f "$T/big60" "$BE" "${BE%.env}.msg"
fi

# --- kill -9 during intake leaves nothing visible
mkfifo "$T/fifo"
$BIN $C -odq someone@example.org < "$T/fifo" &
pid=$!
exec 3> "$T/fifo"
printf 'Subject: killed\n\npart one\n' >&3
for _ in $(seq 50); do ls -A "$T/spool/queue" | grep -q '^\.t' && break; sleep 0.1; done
kill -9 $pid; wait $pid 2>/dev/null
exec 3>&-
grep -l '^Subject: killed' "$T/spool/queue"/*.msg > /dev/null 2>&1 && fail "partial message visible" || ok "kill -9: nothing visible"

# --- full disk: EX_TEMPFAIL, no partial file
MNT="$T/small"
mkdir "$MNT"
if mount -t tmpfs -o size=64k tmpfs "$MNT"; then
	mkconf "$T/small.conf" "$MNT/spool"
	$W $BIN -C "$T/small.conf" --init > /dev/null 2>&1 || fail "--init on tmpfs"
	head -c 300000 /dev/zero | tr '\0' 'x' | fold -w 70 > "$T/big"
	$W $BIN -C "$T/small.conf" -odq someone@example.org < "$T/big"; rc=$?
	[ $rc = 75 ] && ok "full disk: EX_TEMPFAIL" || fail "full disk exit $rc"
	[ -z "$(ls -A "$MNT/spool/queue")" ] && ok "full disk: no file left" || fail "left: $(ls -A "$MNT/spool/queue")"
	umount "$MNT" && MNT=
else
	fail "cannot mount a tmpfs"
fi

[ $FAILS = 0 ] || { echo "$FAILS failure(s)"; exit 1; }
echo "all passed"
