#!/usr/bin/env bash
# bench/sendmail.sh: o365-sendmail against msmtp on the same private Postfix.
#
#   sudo bash bench/sendmail.sh [BUILD_DIR]
#
# The script builds sendmail-shim/o365-sendmail and o365-sendmail-test (and
# the back end each execs for the network modes, o365-sendmail-runner and
# o365-sendmail-runner-test) in
# BUILD_DIR (default: build-bench/, configured as Release when new; -j2;
# a no-op when they are up to date).  Not part of ctest:
# it takes a few minutes and its numbers depend on the machine.
#
# Measures, in one run, against one Postfix (tests/fake/postfix.sh: loopback,
# STARTTLS required, AUTH through Dovecot, every message captured in out/):
#   1. hand-over: how long a caller waits to hand over one small message
#      (median of N_SMALL runs): o365-sendmail -odq and its default mode
#      (-odb: queue, start a detached runner, return) vs msmtp's direct send;
#   2. burst: first submission to last arrival of N_BURST messages sent in a
#      row: o365-sendmail (N_BURST x -odq, then one -q runner, one session)
#      vs msmtp (N_BURST direct sends); also o365-sendmail's default mode;
#   3. peak RSS (ru_maxrss from /usr/bin/time) for a SMALL_MB and a BIG_MB
#      message: the submitting process and the queue runner vs msmtp.
# Every phase checks that every message really arrived (else it aborts).
# Prints a table: measure, o365-sendmail, msmtp, ratio, target, met.
#
# Environment: N_SMALL (50), N_BURST (200), SMALL_MB (5), BIG_MB (50),
# KEEP=1 keeps the work directory.  Needs root, postfix, dovecot, msmtp,
# GNU time (/usr/bin/time, Debian package "time"), python3, openssl.
set -uo pipefail
export LC_ALL=C		# EPOCHREALTIME with a '.'

N_SMALL=${N_SMALL:-50}
N_BURST=${N_BURST:-200}
SMALL_MB=${SMALL_MB:-5}
BIG_MB=${BIG_MB:-50}
WARMUP=3

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build-bench}
PF=$SRC/tests/fake/postfix.sh
SM=$BUILD/sendmail-shim/o365-sendmail
# A user other than root may not name a config (-C), so the non-root
# submitter runs o365-sendmail-test: the same program, whose default config
# is BUILD/sendmail-test/sendmail.conf (written, then removed, by this script).
SMT=$BUILD/sendmail-shim/o365-sendmail-test
TCONF=$BUILD/sendmail-test/sendmail.conf
NOBODY=65534

die() { echo "bench: $*" >&2; exit 1; }
note() { printf '  %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || die "run as root (Postfix's master, the queue user)"
for c in postfix dovecot msmtp python3 openssl useradd userdel setpriv; do
	command -v "$c" > /dev/null || die "$c is not installed"
done
[ -x /usr/bin/time ] || die "GNU time is not installed (apt-get install time)"

# (re)build the programs; a no-op when they are up to date.  o365-sendmail
# execs its back end, o365-sendmail-runner, from the path compiled in: the
# one in this build tree, not the installed one (O365_SENDMAIL_RUNNER).
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
	cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=ON \
		> /dev/null || die "cmake failed"
fi
cmake -S "$SRC" -B "$BUILD" -DO365_SENDMAIL_RUNNER="$BUILD/sendmail-shim/o365-sendmail-runner" \
	> /dev/null || die "cmake failed"
echo "building $SM and $SMT (and their runners)" >&2
cmake --build "$BUILD" -j2 --target o365-sendmail o365-sendmail-test o365-sendmail-runner \
	o365-sendmail-runner-test o365-sendmail-runner-oauth o365-sendmail-runner-oauth-test \
	> "$BUILD/bench-build.log" 2>&1 ||
	die "build failed (see $BUILD/bench-build.log)"

T=$(mktemp -d /var/tmp/o365-bench.XXXXXX) || die "mktemp"
chmod 755 "$T"
QU=o365b$$
OUT=$T/pf/out
CONF=$T/sendmail.conf
RC=$T/msmtprc
RCPT=bob@example.org

cleanup() {
	local i
	# detached runners of the default mode run as the queue user: let them end
	for i in $(seq 1 100); do
		pgrep -u "$QU" > /dev/null 2>&1 || break
		sleep 0.1
	done
	for i in $(pgrep -u "$QU" 2>/dev/null); do kill -KILL "$i" 2>/dev/null; done
	bash "$PF" stop "$T/pf" > /dev/null 2>&1
	if getent passwd "$QU" > /dev/null; then
		userdel "$QU" 2>/dev/null || echo "bench: could not remove user $QU" >&2
	fi
	getent group "$QU" > /dev/null && groupdel "$QU" 2>/dev/null
	rm -rf "$BUILD/sendmail-test"
	if [ "${KEEP:-0}" = 1 ]; then
		echo "bench: kept $T" >&2
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- helpers ------------------------------------------------------------

now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }

count() {		# messages Postfix has delivered into out/
	local f
	shopt -s nullglob
	f=("$OUT"/*.eml)
	shopt -u nullglob
	echo "${#f[@]}"
}

wait_count() {		# wait_count N SECONDS: until out/ holds N messages
	local n=$1 end=$(( $(now_us) + $2 * 1000000 ))
	while [ "$(count)" -lt "$n" ]; do
		[ "$(now_us)" -lt "$end" ] || return 1
		sleep 0.01
	done
}

postfix_idle() {	# Postfix's queue is empty (bounded: 60 s)
	local i
	for i in $(seq 1 600); do
		postqueue -c "$T/pf/etc" -p 2>/dev/null | grep -q 'Mail queue is empty' && return 0
		sleep 0.1
	done
	return 1
}

queue_empty() {		# o365-sendmail's queue holds nothing
	[ -z "$(ls -A "$T/spool/queue" "$T/spool/incoming" 2>/dev/null | grep -v -e ':$' -e '^$')" ]
}

runners_gone() {	# no detached runner left (bounded: 30 s)
	local i
	for i in $(seq 1 300); do
		pgrep -u "$QU" > /dev/null 2>&1 || return 0
		sleep 0.1
	done
	return 1
}

settle() {		# settle N: N messages arrived, nothing in flight anywhere
	wait_count "$1" 120 || die "only $(count) of $1 messages arrived (see $T/pf/maillog)"
	postfix_idle || die "Postfix's queue does not drain"
	runners_gone || die "o365-sendmail runners do not end"
	[ "$(count)" = "$1" ] || die "$(count) messages arrived, expected $1 (duplicates?)"
}

median() {		# median of the numbers on stdin
	sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2];
		else print int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

spread() {		# "min..max" of the numbers on stdin, as ms
	sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f..%.2f ms", lo / 1000, hi / 1000 }'
}

small_msg() {		# small_msg TAG: a ~600-byte message
	printf 'From: app@contoso.com\nTo: %s\nSubject: bench %s\nDate: Thu, 26 Nov 2026 02:00:00 +0000\nMessage-ID: <%s@bench.example>\n\n' \
		"$RCPT" "$1" "$1"
	printf 'line %02d of a small notification body, the size a cron job sends\n' $(seq 1 8)
}

big_msg() {		# big_msg MB FILE: an MB-megabyte message of 76-column lines
	{
		printf 'From: app@contoso.com\nTo: %s\nSubject: bench big %s MB\nMIME-Version: 1.0\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n' \
			"$RCPT" "$1"
		head -c $(( $1 * 1024 * 1024 * 3 / 4 )) /dev/urandom | base64 -w 76
	} > "$2"
}

sm() { "$SM" -C "$CONF" "$@"; }
ms() { msmtp -C "$RC" "$@"; }

maxrss() {		# maxrss CMD...: run it (stdin as given), print its peak RSS in KB
	local f=$T/time.$$ rc
	/usr/bin/time -f '%M' -o "$f" "$@" > /dev/null 2> "$T/maxrss.err"
	rc=$?
	[ $rc = 0 ] || die "$* failed ($rc): $(tail -n 3 "$T/maxrss.err")"
	tail -n 1 "$f"
}

# ---- set-up -------------------------------------------------------------

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "setting up in $T (load average $LOAD0)" >&2
bash "$SRC/tests/fake/mkcerts.sh" "$T/pki" > /dev/null || die "mkcerts failed"
chmod 755 "$T/pki"
chmod 644 "$T/pki/ca.pem"	# the runner reads it as the queue user
PASS='bench-Pa55-w0rd'
port=$(bash "$PF" start "$T/pf" "$T/pki" relay@contoso.com "$PASS" | sed -n 's/^PORT //p')
[ -n "$port" ] || die "Postfix did not start"

# Postfix refuses messages over 10 MB by default: lift that for phase 3 and
# wait (bounded) until a fresh smtpd advertises "SIZE" without a limit.
postconf -c "$T/pf/etc" -e message_size_limit=0 || die "postconf failed"
postfix -c "$T/pf/etc" reload > /dev/null 2>&1 || die "postfix reload failed"
ehlo_size() {
	/usr/bin/python3 - "$port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
f = s.makefile("rb")
f.readline()
s.sendall(b"EHLO bench.example\r\n")
while True:
    line = f.readline()
    if line.upper().startswith(b"250-SIZE") or line.upper().startswith(b"250 SIZE"):
        print(line[4:].decode().strip())
    if not line or line[3:4] != b"-":
        break
s.sendall(b"QUIT\r\n")
PY
}
for i in $(seq 1 100); do
	[ "$(ehlo_size 2>/dev/null)" = SIZE ] && break
	sleep 0.1
done
[ "$(ehlo_size 2>/dev/null)" = SIZE ] || die "Postfix still limits the message size"

# postfix.sh's capture.sh finds its file number by trying .claim.1, .claim.2,
# ... with one subshell (a fork) each: O(n) forks per message, so with
# hundreds of messages in out/ the sink, not the client, sets the pace.  Same
# contract (n.env, then n.eml; n counts from 1), but it starts at the number
# of claims already made, so it usually succeeds at the first try.
cat > "$T/pf/.capture.sh" <<'CAPTURE'
#!/bin/sh
# capture.sh OUTDIR SENDER RECIPIENT...: store one delivered message.
out=$1
sender=$2
shift 2
n=$(( $(ls -A "$out" | grep -c '^\.claim\.') + 1 ))
while ! (set -C; : > "$out/.claim.$n") 2>/dev/null; do
	n=$((n + 1))
done
{
	printf 'MAIL FROM:<%s>\n' "$sender"
	for r in "$@"; do
		printf 'RCPT TO:<%s>\n' "$r"
	done
} > "$out/.$n.env" || exit 75
cat > "$out/.$n.eml" || exit 75
mv "$out/.$n.env" "$out/$n.env" && mv "$out/.$n.eml" "$out/$n.eml" || exit 75
exit 0
CAPTURE
chmod 755 "$T/pf/.capture.sh"
mv "$T/pf/.capture.sh" "$T/pf/capture.sh" || die "cannot replace capture.sh"

printf '%s\n' "$PASS" > "$T/secret"
chmod 600 "$T/secret"
cat > "$CONF" <<EOF
smtp = { host = "127.0.0.1"; port = $port; timeout = 60; helo = "bench.example"; };
tls = { ca_file = "$T/pki/ca.pem"; };
auth = { mechanism = "plain"; user = "relay@contoso.com"; password_file = "$T/secret"; };
from = { address = "relay@contoso.com"; rewrite = "local"; };
queue = { dir = "$T/spool"; user = "$QU"; };
aliases = { root = "admin@contoso.com"; };
# Exchange Online's limits (30 messages a minute, 10,000 recipients a day)
# are what flow control enforces by default; Postfix has none, and this
# measures the client, so lift them (the 3 connections stay)
flow = { per_minute = 10000; day_recipients = 10000000; };
EOF
chmod 644 "$CONF"
mkdir -p "$BUILD/sendmail-test"
cp "$CONF" "$TCONF" && chmod 644 "$TCONF" || die "cannot write $TCONF"
sm --init > /dev/null || die "o365-sendmail --init failed"
sm --check > /dev/null || die "o365-sendmail --check failed"

cat > "$RC" <<EOF
defaults
tls on
tls_starttls on
tls_trust_file $T/pki/ca.pem
auth plain
account bench
host 127.0.0.1
port $port
from relay@contoso.com
user relay@contoso.com
password $PASS
account default : bench
EOF
chmod 600 "$RC"

# one of each end to end before measuring anything
small_msg check-sm | sm -odi -i "$RCPT" 2> "$T/odi.err" || die "o365-sendmail -odi failed"
small_msg check-ms | ms "$RCPT" || die "msmtp failed"
settle 2
grep -q '^Subject: bench check-sm$' "$OUT"/*.eml || die "o365-sendmail's test message did not arrive"
grep -q '^Subject: bench check-ms$' "$OUT"/*.eml || die "msmtp's test message did not arrive"
total=2

# ---- 1. hand-over time of one small message -------------------------------

# Round-robin, so a change in the machine's load hits every contender alike.
# Each round: o365-sendmail -odq (left queued), o365-sendmail in its default
# mode (-odb: queue, start a detached runner, return; that runner also takes
# the -odq message), msmtp, o365-sendmail as user nobody (default mode: a
# drop into incoming/, synced with syncfs(2); no runner, the systemd path
# unit would start one; timed through setpriv, one more exec), and two
# floors: o365-sendmail -bv (start-up, config and recipient resolution, no
# queue write) and bench/fsync_probe.py (the three flushes of a root
# submission, timed inside one process).  Then, untimed, run the queue for
# the nobody drop, wait until everything arrived and no runner is left.
echo "1. hand-over time, $N_SMALL rounds (+$WARMUP warm-up)" >&2
small_msg one > "$T/small.eml"
: > "$T/h_odq"; : > "$T/h_odb"; : > "$T/h_ms"; : > "$T/h_bv"; : > "$T/h_nb"; : > "$T/h_fs"
mkdir "$T/probe"
timed() {		# timed FILE ROUND CMD...: append CMD's wall time (us) past warm-up
	local f=$1 r=$2 t0 t1
	shift 2
	t0=$(now_us)
	"$@" < "$T/small.eml" > /dev/null || die "$* failed"
	t1=$(now_us)
	[ "$r" -gt $WARMUP ] && echo $((t1 - t0)) >> "$f"
	return 0
}
for i in $(seq 1 $((WARMUP + N_SMALL))); do
	timed "$T/h_odq" "$i" sm -odq -i "$RCPT"
	timed "$T/h_odb" "$i" sm -i "$RCPT"
	timed "$T/h_ms" "$i" ms "$RCPT"
	timed "$T/h_nb" "$i" setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups "$SMT" -i "$RCPT"
	timed "$T/h_bv" "$i" sm -bv "$RCPT"
	f=$(/usr/bin/python3 "$SRC/bench/fsync_probe.py" "$T/probe") || die "fsync_probe failed"
	[ "$i" -gt $WARMUP ] && echo "$f" >> "$T/h_fs"
	total=$((total + 4))
	wait_count $((total - 1)) 60 || die "round $i: only $(count) of $((total - 1)) arrived before the pickup"
	runners_gone || die "round $i: runner does not end"
	sm -q || die "o365-sendmail -q (pickup) failed"
	settle $total
done
queue_empty || die "o365-sendmail's queue is not empty"

h_odq=$(median < "$T/h_odq")
h_odb=$(median < "$T/h_odb")
h_ms=$(median < "$T/h_ms")
h_bv=$(median < "$T/h_bv")
h_nb=$(median < "$T/h_nb")
h_fs=$(median < "$T/h_fs")
note "o365-sendmail -odq: median $h_odq us ($(spread < "$T/h_odq"))"
note "o365-sendmail -odb: median $h_odb us ($(spread < "$T/h_odb"))"
note "o365-sendmail -bv:  median $h_bv us ($(spread < "$T/h_bv")): start-up, no queue write"
note "o365-sendmail nobody: median $h_nb us ($(spread < "$T/h_nb"))"
note "fsync_probe:        median $h_fs us ($(spread < "$T/h_fs")): the 3 flushes alone"
note "msmtp:              median $h_ms us ($(spread < "$T/h_ms"))"

# ---- 2. N_BURST messages in a row -----------------------------------------

echo "2. $N_BURST messages in a row, first submission to last arrival" >&2
for i in $(seq 1 "$N_BURST"); do small_msg "burst-$i" > "$T/burst.$i"; done

burst() {		# burst NAME CMD...: sets t0 (first submission) and t1 (last done)
	local name=$1 i
	shift
	t0=$(now_us)
	for i in $(seq 1 "$N_BURST"); do
		"$@" -i "$RCPT" < "$T/burst.$i" || die "$name: submission $i failed"
	done
	t1=$(now_us)
}

# o365-sendmail: queue them all, then one runner sends them over one session
burst o365-odq sm -odq
sm -q || die "o365-sendmail -q failed"
t2=$(now_us)	# the runner is done: Postfix has accepted all of them
total=$((total + N_BURST))
wait_count $total 300 || die "o365-sendmail burst: only $(count) of $total arrived"
t3=$(now_us)
b_sm=$((t3 - t0)); b_sm_sub=$((t1 - t0)); b_sm_run=$((t2 - t1)); b_sm_acc=$((t2 - t0))
settle $total
queue_empty || die "o365-sendmail's queue is not empty after the burst"

# o365-sendmail's default mode: a submission starts a runner unless one is draining
burst o365-odb sm
total=$((total + N_BURST))
wait_count $total 300 || die "o365-sendmail default-mode burst: only $(count) of $total arrived"
t3=$(now_us)
b_odb=$((t3 - t0)); b_odb_sub=$((t1 - t0))
settle $total
queue_empty || die "o365-sendmail's queue is not empty after the default-mode burst"

# msmtp: one session per message
burst msmtp ms
total=$((total + N_BURST))
wait_count $total 600 || die "msmtp burst: only $(count) of $total arrived"
t3=$(now_us)
b_ms=$((t3 - t0)); b_ms_sub=$((t1 - t0))
settle $total

n_burst_arrived=$(cat "$OUT"/*.eml | grep -c '^Subject: bench burst-')
[ "$n_burst_arrived" = $((3 * N_BURST)) ] || die "burst: $n_burst_arrived arrived, expected $((3 * N_BURST))"
note "o365-sendmail -odq + -q: $b_sm us (submissions $b_sm_sub us, runner $b_sm_run us, all accepted at $b_sm_acc us)"
note "o365-sendmail default:   $b_odb us (submissions $b_odb_sub us)"
note "msmtp:                   $b_ms us (submissions $b_ms_sub us)"

# ---- 3. peak RSS -----------------------------------------------------------

echo "3. peak RSS, ${SMALL_MB} MB and ${BIG_MB} MB messages" >&2
declare -A rss
for mb in 0 "$SMALL_MB" "$BIG_MB"; do
	if [ "$mb" = 0 ]; then
		cp "$T/small.eml" "$T/m$mb.eml"
	else
		big_msg "$mb" "$T/m$mb.eml"
	fi
	rss[sub$mb]=$(maxrss "$SM" -C "$CONF" -odq -i "$RCPT" < "$T/m$mb.eml")
	rss[run$mb]=$(maxrss "$SM" -C "$CONF" -q < /dev/null)
	total=$((total + 1))
	settle $total
	queue_empty || die "rss $mb MB: o365-sendmail's queue is not empty"
	rss[ms$mb]=$(maxrss msmtp -C "$RC" "$RCPT" < "$T/m$mb.eml")
	total=$((total + 1))
	settle $total
	# both copies arrived whole (Postfix hands over LF line ends, as written)
	if [ "$mb" != 0 ]; then
		want=$(wc -c < "$T/m$mb.eml")
		big=$(find "$OUT" -name '*.eml' -size +$((want / 1024 - 1))k | wc -l)
		[ "$big" -ge 2 ] || die "rss $mb MB: the message did not arrive whole"
	fi
	rm -f "$T/m$mb.eml"
	note "$mb MB: submit ${rss[sub$mb]} KB, runner ${rss[run$mb]} KB, msmtp ${rss[ms$mb]} KB"
done

# ---- the table -----------------------------------------------------------

ms_of() { awk -v u="$1" 'BEGIN { printf "%.2f ms", u / 1000 }'; }
s_of() { awk -v u="$1" 'BEGIN { printf "%.2f s", u / 1000000 }'; }
mb_of() { awk -v k="$1" 'BEGIN { printf "%.2f MB", k / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }'; }
ge() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { print (b > 0 && a / b >= t) ? "yes" : "no" }'; }
lt() { awk -v k="$1" -v t="$2" 'BEGIN { print (k / 1024 < t) ? "yes" : "no" }'; }

row() { printf '%-44s %13s %13s %8s %12s %4s\n' "$@"; }
echo
echo "o365-sendmail vs msmtp, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -r)," \
	"load average at start $LOAD0, at end $(cut -d' ' -f1-3 /proc/loadavg)"
row measure o365-sendmail msmtp ratio target met
row "hand-over, 1 small msg, median of $N_SMALL (-odq)" "$(ms_of "$h_odq")" "$(ms_of "$h_ms")" \
	"$(ratio "$h_ms" "$h_odq")" ">= 50x" "$(ge "$h_ms" "$h_odq" 50)"
row "hand-over, 1 small msg, median of $N_SMALL (default)" "$(ms_of "$h_odb")" "$(ms_of "$h_ms")" \
	"$(ratio "$h_ms" "$h_odb")" ">= 50x" "$(ge "$h_ms" "$h_odb" 50)"
row "hand-over, 1 small msg, median of $N_SMALL (nobody)" "$(ms_of "$h_nb")" "$(ms_of "$h_ms")" \
	"$(ratio "$h_ms" "$h_nb")" ">= 50x" "$(ge "$h_ms" "$h_nb" 50)"
row "$N_BURST msgs, 1st submit to last arrival (-odq,-q)" "$(s_of "$b_sm")" "$(s_of "$b_ms")" \
	"$(ratio "$b_ms" "$b_sm")" ">= 15x" "$(ge "$b_ms" "$b_sm" 15)"
row "$N_BURST msgs, 1st submit to last arrival (default)" "$(s_of "$b_odb")" "$(s_of "$b_ms")" \
	"$(ratio "$b_ms" "$b_odb")" ">= 15x" "$(ge "$b_ms" "$b_odb" 15)"
for mb in 0 "$SMALL_MB" "$BIG_MB"; do
	label=$([ "$mb" = 0 ] && echo "small" || echo "$mb MB")
	row "peak RSS submitting, $label msg" "$(mb_of "${rss[sub$mb]}")" "$(mb_of "${rss[ms$mb]}")" \
		"$(ratio "${rss[ms$mb]}" "${rss[sub$mb]}")" "< 3 MB" "$(lt "${rss[sub$mb]}" 3)"
	row "peak RSS delivering, $label msg" "$(mb_of "${rss[run$mb]}")" "$(mb_of "${rss[ms$mb]}")" \
		"$(ratio "${rss[ms$mb]}" "${rss[run$mb]}")" "< 8 MB" "$(lt "${rss[run$mb]}" 8)"
done
echo
echo "ratio: msmtp / o365-sendmail (time or RSS); msmtp submits and delivers in one process."
echo "hand-over floors (medians): o365-sendmail -bv (start-up and config, no queue write) $(ms_of "$h_bv");" \
	"the 3 flushes of a root submission (fsync_probe.py) $(ms_of "$h_fs")"
echo "burst, o365-sendmail -odq,-q: submissions $(s_of "$b_sm_sub"), then the runner $(s_of "$b_sm_run")" \
	"(Postfix had accepted all at $(s_of "$b_sm_acc"): $(ratio "$b_ms_sub" "$b_sm_acc") faster than msmtp's sends);"
echo "burst, default mode: submissions $(s_of "$b_odb_sub"); msmtp: sends $(s_of "$b_ms_sub")." \
	"The rest of each total is Postfix delivering its backlog into out/."
