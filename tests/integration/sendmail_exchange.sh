#!/bin/bash
# sendmail_exchange.sh: the queue runner against Exchange Online's replies,
# played by tests/fake/fakeserver.py over STARTTLS with the test PKI.
#   SendAsDenied after DATA  -> held in the queue (Held: 1), no bounce, the
#                               advice names the setting to change
#   550 5.1.1 to every RCPT  -> failed/, one bounce queued
#   the bounce refused       -> failed/, never bounced again
#   451 to RCPT              -> kept, retried later (Attempts, Next-Try)
#   connection closed mid-DATA, or no greeting at all -> kept
#   no STARTTLS offered      -> no AUTH sent, kept
#   two messages             -> one session, RSET between them
# Runs as root (a per-run queue user is created and removed).
set -u
W=${O365_WRAP:-}	# the valgrind runner sets it
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
# the build-tree front end: it execs the build-tree runner (o365-sendmail
# would exec the installed one); with -C, as root, it behaves the same
BIN=$BUILD/sendmail-shim/o365-sendmail-test
FAKE=$SRC/tests/fake/fakeserver.py
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 1; }
[ -x "$BIN" ] || { echo "FAIL: $BIN not built"; exit 1; }

T=$(mktemp -d /tmp/o365-smx.XXXXXX)
QU=o365x$$
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

bash "$SRC/tests/fake/mkcerts.sh" "$T/pki" || { echo "FAIL: mkcerts"; exit 1; }
chmod 755 "$T" "$T/pki"; chmod 644 "$T/pki/ca.pem"	# the runner reads it as the queue user
PASS='Pa55-marker-0x5e3'
printf '%s\n' "$PASS" > "$T/secret"
chmod 600 "$T/secret"
U64=$(printf 'relay@contoso.com' | base64)
P64=$(printf '%s' "$PASS" | base64)

# smtp.timeout covers each wait for the server; the silent-server case needs
# it short, but under valgrind on a loaded machine a TLS handshake and AUTH
# alone can take seconds, so the valgrind runner ($O365_WRAP) gets more.
TMO=3
[ -n "${O365_WRAP:-}" ] && TMO=30
mkconf() {	# mkconf PORT
	cat > "$T/sendmail.conf" <<CONF
smtp = { host = "localhost"; port = $1; timeout = $TMO; tls = "starttls"; helo = "web1.example.com"; };
tls = { ca_file = "$T/pki/ca.pem"; };
auth = { user = "relay@contoso.com"; password_file = "$T/secret"; mechanism = "login"; };
from = { address = "relay@contoso.com"; rewrite = "local"; };
queue = { dir = "$T/spool"; user = "$QU"; };
CONF
}
mkconf 9
C="-C $T/sendmail.conf"
$W $BIN $C --init > /dev/null || { echo "FAIL: --init"; exit 1; }
Q=$T/spool/queue
F=$T/spool/failed

# The scripted server: prelude up to AUTH, then the scenario's own lines.
prelude() {
	cat <<S
S: 220 fake.outlook.office365.com Microsoft ESMTP MAIL Service ready at Thu, 26 Nov 2026 01:00:00 +0000
C: EHLO web1.example.com
S: 250-fake.outlook.office365.com Hello [127.0.0.1]
S: 250-SIZE 157286400
S: 250-DSN
S: 250-ENHANCEDSTATUSCODES
S: 250-STARTTLS
S: 250 8BITMIME
C: STARTTLS
S: 220 2.0.0 SMTP server ready
starttls
C: EHLO web1.example.com
S: 250-fake.outlook.office365.com Hello [127.0.0.1]
S: 250-SIZE 157286400
S: 250-ENHANCEDSTATUSCODES
S: 250-AUTH LOGIN XOAUTH2
S: 250 8BITMIME
C: AUTH LOGIN
S: 334 VXNlcm5hbWU6
C: $U64
S: 334 UGFzc3dvcmQ6
C: $P64
S: 235 2.7.0 Authentication successful
S
}
# The message every scenario sends: complete headers, so nothing is added
# and the exact lines are known.
msg() {	# msg N
	printf 'From: app@contoso.com\nTo: bob@example.org\nSubject: m%s\nDate: Thu, 26 Nov 2026 00:00:00 +0000\nMessage-ID: <m%s@example.org>\n\nbody %s\n' "$1" "$1" "$1"
}
data_lines() {	# data_lines N: what the server must read after 354
	printf 'C: From: app@contoso.com\nC: To: bob@example.org\nC: Subject: m%s\nC: Date: Thu, 26 Nov 2026 00:00:00 +0000\nC: Message-ID: <m%s@example.org>\nC: \nC: body %s\nC: .\n' "$1" "$1" "$1"
}
serve() {	# serve SCRIPTFILE: start the fake, point the config at it
	: > "$T/transcript"
	rm -f "$T/fake.out"	# the redirection below runs in the background: no stale PORT line
	/usr/bin/python3 "$FAKE" --script "$1" --cert "$T/pki/server" --transcript "$T/transcript" \
		--lifetime 60 > "$T/fake.out.new" 2>&1 &
	FPID=$!
	for _ in $(seq 300); do grep -q "^PORT " "$T/fake.out.new" 2>/dev/null && break; sleep 0.1; done	# 30 s: a loaded machine
	mv "$T/fake.out.new" "$T/fake.out"
	port=$(sed -n 's/^PORT //p' "$T/fake.out")
	[ -n "$port" ] || { fail "fake server did not start: $(cat "$T/fake.out")"; return 1; }
	mkconf "$port"
}
unserve() { kill "$FPID" 2>/dev/null; wait "$FPID" 2>/dev/null; FPID=; }
runq() { $W $BIN $C -v -q > "$T/run.out" 2>&1; echo "--- run" >> "$T/all.out"; cat "$T/run.out" >> "$T/all.out"; }
clearq() { rm -f "$Q"/* "$F"/*; }
queue1() { msg "$1" | $W $BIN $C -odq -i bob@example.org || fail "queueing m$1"; }

# --- SendAsDenied: held in the queue, not bounced, advice logged
queue1 1
{ prelude; cat <<S
C: MAIL FROM:<relay@contoso.com> SIZE=$(msg 1 | wc -c)
S: 250 2.1.0 Sender OK
C: RCPT TO:<bob@example.org>
S: 250 2.1.5 Recipient OK
C: DATA
S: 354 Start mail input; end with <CRLF>.<CRLF>
S
data_lines 1; cat <<S
S: 554 5.2.252 SendAsDenied; relay@contoso.com not allowed to send as app@contoso.com; STOREDRV.Submission.Exception:SendAsDeniedException
C: RSET
S: 250 2.0.0 Resetting
C: QUIT
S: 221 2.0.0 Service closing transmission channel
S
} > "$T/s1"
serve "$T/s1" && runq; unserve
grep -q MISMATCH "$T/transcript" && fail "SendAsDenied transcript: $(grep MISMATCH "$T/transcript")"
E=$(ls "$Q"/*.env 2>/dev/null | head -1)
[ -z "$(ls "$F")" ] && [ -n "$E" ] && grep -q '^Held: 1$' "$E" && ok "SendAsDenied: message held in the queue" ||
	fail "SendAsDenied: queue $(ls "$Q") failed/ $(ls "$F")"
grep -q '^Last-Error: 554 5.2.252' "$E" 2>/dev/null && ok "SendAsDenied: reason recorded" || fail "no reason in env"
nb=$(grep -l '^Bounce: 1$' "$Q"/*.env 2>/dev/null | wc -l)
[ "$nb" = 0 ] && ok "SendAsDenied: no bounce" || fail "bounces queued: $nb"
grep -q "status=held" "$T/run.out" && grep -q 'sendas-denied.*from.address' "$T/run.out" &&
	ok "SendAsDenied: hold logged with the setting to change" || fail "no hold advice: $(cat "$T/run.out")"
# held: a later run does not touch it (no server at all)
$W $BIN $C -q > "$T/run.out" 2>&1
grep -q 'connecting' "$T/run.out" && fail "a held message was tried again" || ok "held message not retried"
clearq

# --- every recipient refused for good: failed/, one bounce
queue1 10
{ prelude; cat <<S
C~ MAIL FROM:<relay@contoso.com>.*
S: 250 2.1.0 Sender OK
C: RCPT TO:<bob@example.org>
S: 550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup
C: RSET
S: 250 2.0.0 Resetting
C: QUIT
S: 221 2.0.0 Service closing transmission channel
S
} > "$T/s10"
serve "$T/s10" && runq; unserve
grep -q MISMATCH "$T/transcript" && fail "5xx transcript: $(grep MISMATCH "$T/transcript")"
[ "$(ls "$F"/*.msg 2>/dev/null | wc -l)" = 1 ] && ok "5xx: message in failed/" || fail "5xx: failed/ $(ls "$F")"
grep -q '5.1.10' "$F"/*.env 2>/dev/null && ok "5xx: reason recorded" || fail "no reason in failed env"
nb=$(grep -l '^Bounce: 1$' "$Q"/*.env 2>/dev/null | wc -l)
[ "$nb" = 1 ] && ok "one bounce queued" || fail "bounces queued: $nb"
B=$(grep -l '^Bounce: 1$' "$Q"/*.env 2>/dev/null | head -1)
grep -q '^Rcpt: root@contoso.com$' "$B" 2>/dev/null && ok "bounce goes to the local sender through aliases" || fail "bounce rcpt: $(grep Rcpt "$B")"
grep -q 'X-O365-Sendmail-Bounce' "${B%.env}.msg" 2>/dev/null && ok "bounce marked" || fail "bounce not marked"
grep -q "status=failed" "$T/run.out" && ok "failure logged" || fail "no failed log line: $(cat "$T/run.out")"

# --- the bounce itself refused: failed/, no bounce of the bounce
{ prelude; cat <<S
C~ MAIL FROM:<relay@contoso.com>.*
S: 250 2.1.0 Sender OK
C: RCPT TO:<root@contoso.com>
S: 550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup
C: RSET
S: 250 2.0.0 Resetting
C: QUIT
S: 221 2.0.0 Service closing transmission channel
S
} > "$T/s2"
serve "$T/s2" && runq; unserve
grep -q MISMATCH "$T/transcript" && fail "bounce transcript: $(grep MISMATCH "$T/transcript")"
[ -z "$(ls "$Q")" ] && ok "refused bounce left the queue" || fail "queue: $(ls "$Q")"
[ "$(ls "$F"/*.env | wc -l)" = 2 ] && ok "refused bounce in failed/, not bounced again" || fail "failed/: $(ls "$F")"
clearq

# --- 451 to RCPT: kept for a retry
queue1 2
{ prelude; cat <<S
C~ MAIL FROM:<relay@contoso.com>.*
S: 250 2.1.0 Sender OK
C: RCPT TO:<bob@example.org>
S: 451 4.7.500 Server busy. Please try again later.
C: RSET
S: 250 2.0.0 Resetting
C: QUIT
S: 221 2.0.0 Service closing transmission channel
S
} > "$T/s3"
serve "$T/s3" && runq; unserve
E=$(ls "$Q"/*.env 2>/dev/null | head -1)
[ -n "$E" ] && grep -q '^Attempts: 1$' "$E" && grep -q '^Last-Error: 451' "$E" && ok "4xx: kept, attempt recorded" ||
	fail "4xx: $(cat "$E" 2>/dev/null)"
nt=$(sed -n 's/^Next-Try: //p' "$E" 2>/dev/null)
[ -n "$nt" ] && [ "$nt" -gt "$(date +%s)" ] && ok "4xx: retry scheduled later" || fail "4xx: Next-Try $nt"
[ -z "$(ls "$F")" ] && ok "4xx: nothing failed" || fail "4xx: failed/ $(ls "$F")"
# the queue runner (not -q) respects the backoff: no connection at all
$W $BIN $C --queue-runner > "$T/run.out" 2>&1
grep -q '^Attempts: 1$' "$E" && ok "backoff respected by --queue-runner" || fail "backoff ignored"
clearq

# --- connection dropped mid-DATA
queue1 3
{ prelude; cat <<S
C~ MAIL FROM:<relay@contoso.com>.*
S: 250 2.1.0 Sender OK
C: RCPT TO:<bob@example.org>
S: 250 2.1.5 Recipient OK
C: DATA
S: 354 Start mail input; end with <CRLF>.<CRLF>
C: From: app@contoso.com
close
S
} > "$T/s4"
serve "$T/s4" && runq; unserve
E=$(ls "$Q"/*.env 2>/dev/null | head -1)
[ -n "$E" ] && grep -q '^Attempts: 1$' "$E" && ok "drop mid-DATA: kept for a retry" || fail "drop mid-DATA: $(ls "$Q" "$F")"
clearq

# --- a server that never answers
queue1 4
printf 'stall\n' > "$T/s5"
serve "$T/s5" && runq; unserve
E=$(ls "$Q"/*.env 2>/dev/null | head -1)
[ -n "$E" ] && grep -q '^Attempts: 1$' "$E" && grep -qi 'timeout' "$E" && ok "silent server: timed out, kept" ||
	fail "silent server: $(cat "$E" 2>/dev/null)"
clearq

# --- no STARTTLS offered: no AUTH, nothing sent
queue1 5
cat > "$T/s6" <<S
S: 220 fake ESMTP
C: EHLO web1.example.com
S: 250-fake Hello
S: 250-AUTH LOGIN PLAIN
S: 250 8BITMIME
S
serve "$T/s6" && runq; unserve
grep -q '^C: AUTH' "$T/transcript" && fail "AUTH sent without TLS" || ok "no STARTTLS: no AUTH sent"
grep -q "$P64" "$T/transcript" && fail "password sent without TLS"
E=$(ls "$Q"/*.env 2>/dev/null | head -1)
[ -n "$E" ] && grep -q '^Attempts: 1$' "$E" && ok "no STARTTLS: kept" || fail "no STARTTLS: $(ls "$Q" "$F")"
clearq

# --- one recipient refused, one accepted: sent, one bounce for the refused one
msg 8 | $W $BIN $C -odq -i bob@example.org gone@example.org || fail "queueing m8"
{ prelude; cat <<S
C~ MAIL FROM:<relay@contoso.com>.*
S: 250 2.1.0 Sender OK
C: RCPT TO:<bob@example.org>
S: 250 2.1.5 Recipient OK
C: RCPT TO:<gone@example.org>
S: 550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup
C: DATA
S: 354 Start mail input; end with <CRLF>.<CRLF>
S
data_lines 8; cat <<S
S: 250 2.0.0 OK <m8@example.org> [Hostname=fake]
C: QUIT
S: 221 2.0.0 Service closing transmission channel
S
} > "$T/s8"
serve "$T/s8" && runq; unserve
grep -q MISMATCH "$T/transcript" && fail "partial: $(grep MISMATCH "$T/transcript")"
B=$(grep -l '^Bounce: 1$' "$Q"/*.env 2>/dev/null)
[ "$(ls "$Q"/*.env 2>/dev/null | wc -l)" = 1 ] && [ -n "$B" ] && grep -q 'gone@example.org' "${B%.env}.msg" &&
	! grep -q '^    bob@example.org' "${B%.env}.msg" && ok "partial 5xx: sent, one bounce naming only the refused address" ||
	fail "partial 5xx: queue $(ls "$Q"); $(cat "${B%.env}.msg" 2>/dev/null | head -20)"
clearq

# --- one recipient deferred, one accepted: sent, kept for the deferred one only
msg 9 | $W $BIN $C -odq -i bob@example.org later@example.org || fail "queueing m9"
{ prelude; cat <<S
C~ MAIL FROM:<relay@contoso.com>.*
S: 250 2.1.0 Sender OK
C: RCPT TO:<bob@example.org>
S: 250 2.1.5 Recipient OK
C: RCPT TO:<later@example.org>
S: 452 4.5.3 Too many recipients
C: DATA
S: 354 Start mail input; end with <CRLF>.<CRLF>
S
data_lines 9; cat <<S
S: 250 2.0.0 OK <m9@example.org> [Hostname=fake]
C: QUIT
S: 221 2.0.0 Service closing transmission channel
S
} > "$T/s9"
serve "$T/s9" && runq; unserve
E=$(ls "$Q"/*.env 2>/dev/null)
[ "$(echo "$E" | wc -w)" = 1 ] && grep -q '^Rcpt: later@example.org$' "$E" && ! grep -q '^Rcpt: bob@example.org$' "$E" &&
	grep -q '^Attempts: 1$' "$E" && ok "partial 4xx: sent, kept for the deferred recipient only" ||
	fail "partial 4xx: $(cat $E 2>/dev/null)"
clearq

# --- two messages, one session, RSET between
queue1 6
sleep 1	# ids sort by time: m6 first
queue1 7
{ prelude; cat <<S
C~ MAIL FROM:<relay@contoso.com>.*
S: 250 2.1.0 Sender OK
C: RCPT TO:<bob@example.org>
S: 250 2.1.5 Recipient OK
C: DATA
S: 354 Start mail input; end with <CRLF>.<CRLF>
S
data_lines 6; cat <<S
S: 250 2.0.0 OK <m6@example.org> [Hostname=fake]
C: RSET
S: 250 2.0.0 Resetting
C~ MAIL FROM:<relay@contoso.com>.*
S: 250 2.1.0 Sender OK
C: RCPT TO:<bob@example.org>
S: 250 2.1.5 Recipient OK
C: DATA
S: 354 Start mail input; end with <CRLF>.<CRLF>
S
data_lines 7; cat <<S
S: 250 2.0.0 OK <m7@example.org> [Hostname=fake]
C: QUIT
S: 221 2.0.0 Service closing transmission channel
S
} > "$T/s7"
serve "$T/s7" && runq; unserve
grep -q MISMATCH "$T/transcript" && fail "two messages: $(grep MISMATCH "$T/transcript")"
grep -q '^NEXT' "$T/transcript" && fail "two messages used two connections"
[ -z "$(ls "$Q")" ] && [ "$(grep -c 'status=sent' "$T/run.out")" = 2 ] && ok "two messages over one session" ||
	fail "two messages: queue $(ls "$Q"); $(cat "$T/run.out")"

grep -q "$PASS" "$T/all.out" && fail "the password reached a log" || ok "password never logged (also with -v)"
grep -q "$P64" "$T/all.out" && fail "the password's base64 reached a log"

[ $FAILS = 0 ] || { echo "$FAILS failure(s)"; exit 1; }
echo "all passed"
