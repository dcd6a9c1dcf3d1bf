#!/bin/bash
# sendmail_postfix.sh: o365-sendmail relaying into a private Postfix
# submission server (tests/fake/postfix.sh: STARTTLS + AUTH, messages
# captured as out/<n>.eml + .env).
#   exact bytes and envelope; cron's flags with From rewriting and aliases;
#   bsd-mailx and git send-email calling our sendmail; 50 concurrent
#   senders (half of them an ordinary user) and 2 runners: every message
#   delivered exactly once.
# Runs as root.  Uses o365-sendmail-test, whose default config is
# BUILD/sendmail-test/sendmail.conf (callers like mail(1) pass no -C).
set -u
W=${O365_WRAP:-}	# the valgrind runner sets it
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
TBIN=$BUILD/sendmail-shim/o365-sendmail-test
TCONF=$BUILD/sendmail-test/sendmail.conf
PF=$SRC/tests/fake/postfix.sh
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 1; }
[ -x "$TBIN" ] || { echo "FAIL: $TBIN not built"; exit 1; }

T=$(mktemp -d /tmp/o365-smp.XXXXXX)
chmod 755 "$T"
QU=o365p$$
SU=o365s$$
FAILS=0
cleanup() {
	bash "$PF" stop "$T/pf" > /dev/null 2>&1
	userdel "$QU" 2>/dev/null
	userdel "$SU" 2>/dev/null
	rm -rf "$T" "$BUILD/sendmail-test"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }
OUT=$T/pf/out
wait_count() {	# wait_count N: until N messages are captured (bounded, 60 s)
	for _ in $(seq 600); do
		[ "$(ls "$OUT" 2>/dev/null | grep -c '\.eml$')" -ge "$1" ] && return 0
		sleep 0.1
	done
	return 1
}
count() { ls "$OUT" 2>/dev/null | grep -c '\.eml$'; }

bash "$SRC/tests/fake/mkcerts.sh" "$T/pki" || { echo "FAIL: mkcerts"; exit 1; }
chmod 755 "$T/pki"; chmod 644 "$T/pki/ca.pem"	# the runner reads it as the queue user
PASS='pf-Pa55 w0rd-marker'
port=$(bash "$PF" start "$T/pf" "$T/pki" relay@contoso.com "$PASS" | sed -n 's/^PORT //p')
[ -n "$port" ] || { echo "FAIL: postfix did not start"; exit 1; }
printf '%s\n' "$PASS" > "$T/secret"
chmod 600 "$T/secret"
mkdir -p "$BUILD/sendmail-test"
cat > "$TCONF" <<CONF
smtp = { host = "localhost"; port = $port; timeout = 20; helo = "web1.example.com"; };
tls = { ca_file = "$T/pki/ca.pem"; };
auth = { user = "relay@contoso.com"; password_file = "$T/secret"; };
from = { address = "relay@contoso.com"; rewrite = "local"; };
queue = { dir = "$T/spool"; user = "$QU"; };
aliases = { root = "admin@contoso.com"; };
CONF
chmod 644 "$TCONF"
$W $TBIN --init > /dev/null || { echo "FAIL: --init"; exit 1; }

# --- exact bytes and envelope (-odi waits for the attempt)
printf 'From: app@contoso.com\r\nTo: bob@example.org\r\nSubject: exact\r\nDate: Thu, 26 Nov 2026 00:00:00 +0000\r\nMessage-ID: <exact@example.org>\r\n\r\n.leading dot\r\n..two dots\r\nh\xc3\xa9llo 8-bit\r\nno newline at end' > "$T/exact.in"
$W $TBIN -odi -i bob@example.org < "$T/exact.in" 2> "$T/odi.err"; rc=$?
[ $rc = 0 ] && ok "-odi exit 0" || fail "-odi exit $rc: $(cat "$T/odi.err")"
grep -q 'sent' "$T/odi.err" && ok "-odi reports the delivery" || fail "-odi said: $(cat "$T/odi.err")"
wait_count 1 || fail "nothing delivered"
tr -d '\r' < "$T/exact.in" > "$T/exact.want"
printf '\n' >> "$T/exact.want"
cmp -s "$OUT/1.eml" "$T/exact.want" && ok "exact bytes delivered (dots, 8-bit, final line end)" ||
	fail "bytes differ: $(diff "$T/exact.want" "$OUT/1.eml" | head -5)"
printf 'MAIL FROM:<relay@contoso.com>\nRCPT TO:<bob@example.org>\n' | cmp -s - "$OUT/1.env" &&
	ok "envelope: relay mailbox -> bob" || fail "envelope: $(cat "$OUT/1.env")"

# --- cron's exact flags: From rewritten, root through the aliases
printf 'Subject: Cron <root@web1> run-parts\n\nout of the job\n' |
	$W $TBIN -FCronDaemon -i -B8BITMIME -oem root || fail "cron submission"
wait_count 2 || fail "cron mail not delivered"
grep -q '^From: "CronDaemon (root@' "$OUT/2.eml" && grep -q '<relay@contoso.com>$' "$OUT/2.eml" &&
	ok "cron: From rewritten with the original visible" || fail "cron From: $(grep ^From "$OUT/2.eml")"
grep -q '^RCPT TO:<admin@contoso.com>$' "$OUT/2.env" && ok "cron: root -> admin@contoso.com" || fail "cron env: $(cat "$OUT/2.env")"

# --- bsd-mailx with our sendmail (set sendmail=...)
printf 'set sendmail=%s\n' "$TBIN" > "$T/mailrc"
echo "mailx body" | MAILRC=$T/mailrc mail -s "via mailx" -c carol@example.org bob@example.org || fail "mail(1) failed"
wait_count 3 || fail "mailx message not delivered"
grep -q '^Subject: via mailx$' "$OUT/3.eml" && grep -q '^RCPT TO:<carol@example.org>$' "$OUT/3.env" &&
	grep -q '^RCPT TO:<bob@example.org>$' "$OUT/3.env" && ok "bsd-mailx (-i -t): To and Cc delivered" ||
	fail "mailx: $(cat "$OUT/3.env" 2>/dev/null)"

# --- git send-email --smtp-server=our sendmail (-i rcpts, -f with --envelope-sender)
(
	set -e
	cd "$T" && git init -q repo && cd repo
	echo "a line" > file && git add file
	git -c user.name=Dev -c user.email=dev@contoso.com commit -q -m "a change"
	git format-patch -q -1 -o "$T/patches"
) || fail "git setup"
GIT_CONFIG_GLOBAL=/dev/null GIT_COMMITTER_NAME=Dev GIT_COMMITTER_EMAIL=dev@contoso.com GIT_AUTHOR_NAME=Dev GIT_AUTHOR_EMAIL=dev@contoso.com git -C "$T/repo" send-email --quiet --confirm=never --no-chain-reply-to \
	--from="Dev <dev@contoso.com>" --to=bob@example.org --envelope-sender=dev@contoso.com \
	--smtp-server="$TBIN" "$T/patches"/*.patch > "$T/git.out" 2>&1 || fail "git send-email: $(cat "$T/git.out")"
wait_count 4 || fail "git message not delivered"
grep -q '^Subject: \[PATCH\] a change$' "$OUT/4.eml" && grep -q '^RCPT TO:<bob@example.org>$' "$OUT/4.env" &&
	ok "git send-email delivered" || fail "git: $(head -20 "$OUT/4.eml" 2>/dev/null)"

# --- Symfony's -bs: SMTP on stdin/stdout
base=$(count)
printf 'EHLO app.example.com\r\nMAIL FROM:<app@contoso.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nFrom: app@contoso.com\r\nSubject: via -bs\r\n\r\n..one dot\r\n.\r\nQUIT\r\n' |
	$W $TBIN -bs > "$T/bs.out" 2>&1
grep -q '^250 2.0.0 ok: queued' "$T/bs.out" && grep -q '^221 ' "$T/bs.out" && ok "-bs: queued and closed" || fail "-bs: $(cat "$T/bs.out")"
wait_count $((base + 1)) || fail "-bs message not delivered"
E=$(grep -l '^Subject: via -bs' "$OUT"/*.eml 2>/dev/null | head -1)
[ -n "$E" ] && grep -q '^\.one dot$' "$E" && ok "-bs: delivered, transparency dot undone" || fail "-bs: $(cat "$E" 2>/dev/null)"

# --- PHP mail() (-t -i) and Symfony's -t with an attached -f
base=$(count)
printf 'To: "Bob" <bob@example.org>\nCc: carol@example.org\nSubject: via php\n\nphp body\n' | $W $TBIN -t -i || fail "php"
printf 'To: dave@example.org\nSubject: via symfony -t\n\nbody\n' | $W $TBIN -t -i -fbounces@contoso.com || fail "symfony -t"
wait_count $((base + 2)) || fail "php/symfony messages not delivered"
grep -l '^Subject: via php' "$OUT"/*.eml > /dev/null 2>&1 && ok "PHP mail() -t -i delivered" || fail "php not delivered"
E=$(grep -l '^Subject: via symfony -t' "$OUT"/*.eml 2>/dev/null | head -1)
[ -n "$E" ] && grep -q '^RCPT TO:<dave@example.org>$' "${E%.eml}.env" && grep -q '^MAIL FROM:<relay@contoso.com>$' "${E%.eml}.env" &&
	ok "Symfony -t -fADDR: envelope sender is still the relay mailbox" || fail "symfony env: $(cat "${E%.eml}.env" 2>/dev/null)"

# --- 50 concurrent senders (25 root, 25 an ordinary user), then 2 runners
useradd --no-create-home --shell /usr/sbin/nologin "$SU" || fail "useradd"
base=$(count)
pids=()
for i in $(seq 1 50); do
	if [ $((i % 2)) = 0 ]; then
		printf 'Subject: burst %s\n\nmessage %s\n' "$i" "$i" | $W $TBIN -odq bob@example.org &
	else
		printf 'Subject: burst %s\n\nmessage %s\n' "$i" "$i" |
			setpriv --reuid="$SU" --regid="$SU" --init-groups --no-new-privs $W "$TBIN" -odq bob@example.org &
	fi
	pids+=($!)
done
bad=0
for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
[ $bad = 0 ] && ok "50 concurrent submissions accepted" || fail "$bad submissions failed"
$W $TBIN -q > "$T/r1.out" 2>&1 &
r1=$!
$W $TBIN -q > "$T/r2.out" 2>&1 &
r2=$!
wait $r1; wait $r2
$W $TBIN -q > /dev/null 2>&1	# whatever a lock race left for later
wait_count $((base + 50)) || fail "only $(( $(count) - base )) of 50 delivered"
# Postfix delivers asynchronously: count once its queue is empty
for _ in $(seq 300); do
	postqueue -c "$T/pf/etc" -p 2>/dev/null | grep -q 'Mail queue is empty' && break
	sleep 0.1
done
dups=$(cat "$OUT"/*.eml | grep '^Subject: burst ' | sort | uniq -d | wc -l)
n=$(cat "$OUT"/*.eml | grep -c '^Subject: burst ')
[ "$n" = 50 ] && [ "$dups" = 0 ] && ok "each of the 50 delivered exactly once" || fail "burst: $n delivered, $dups duplicated"
[ -z "$(ls -A "$T/spool/queue" "$T/spool/incoming" | grep -v ':$' | grep -v '^$')" ] && ok "queue and incoming empty" ||
	fail "left: $(ls -A "$T/spool/queue" "$T/spool/incoming")"
grep -q "$PASS" "$T"/*.out "$T/odi.err" 2>/dev/null && fail "password in output" || ok "password never printed"

[ $FAILS = 0 ] || { echo "$FAILS failure(s)"; exit 1; }
echo "all passed"
