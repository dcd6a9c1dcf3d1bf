#!/bin/bash
# sendmail_xoauth2_midrun.sh: o365-sendmail's XOAUTH2 token running out in the
# middle of a queue run (issue 5), against tests/fake/fake_token.py and
# tests/fake/fake_exo_smtp.py --token-sessions (a session lives only as long
# as its token: "421 4.7.0 Session invalidated - AccessTokenExpired").
#   short-lived tokens (603 s: 3 s over the cache's 10-minute margin) and a
#     slow server (0.4 s per message): the runner starts a new session with a
#     fresh token before the old one is within the margin; every message is
#     delivered exactly once, in one run, nothing deferred
#   the server revokes the session's token after the 3rd message and ends the
#     session: the next message gets a new session, the refused token one
#     forced refresh, and the run goes on: no hold, no alert, no bounce,
#     nothing lost or duplicated, no attempt counted
#   no token or secret in any output or log
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

T=$(mktemp -d /tmp/o365-smxm.XXXXXX)
QU=o365m$$
FAILS=0
TPID= APID= BPID=
cleanup() {
	local p
	for p in $TPID $APID $BPID; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	userdel "$QU" 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }

bash "$SRC/tests/fake/mkcerts.sh" "$T/pki" > /dev/null || { echo "FAIL: mkcerts"; exit 1; }
chmod 755 "$T" "$T/pki"; chmod 644 "$T/pki/ca.pem"	# the runner reads it as the queue user
SECRET='cs-Marker.0x5a1d-midrun-secret'
mkdir -p "$T/state" "$T/outa" "$T/outb"
users() {	# users EXPIRES_IN
	cat > "$T/state/users.json" <<JSON
{"users": {},
 "clients": {"app-client": {"public": false, "secret": "$SECRET", "case": "ok"}},
 "mode": "normal", "expires_in": $1, "rotate_refresh": true}
JSON
}
users 603
printf '{"relay@contoso.com": {"sendas": [], "apps": ["app-client"]}}\n' > "$T/sendas.json"

port_of() {	# port_of NAME
	for _ in $(seq 300); do grep -q '^PORT ' "$T/$1.port" 2>/dev/null && break; sleep 0.1; done	# a loaded machine
	sed -n 's/^PORT //p' "$T/$1.port"
}
$PY "$SRC/tests/fake/fake_token.py" --cert "$T/pki/server" --state "$T/state" --lifetime 400 \
	> "$T/tok.port" 2> "$T/tok.err" &
TPID=$!
exo() {	# exo NAME OUTDIR ARGS...: a fake Exchange Online
	local name=$1 out=$2
	shift 2
	$PY "$SRC/tests/fake/fake_exo_smtp.py" --cert "$T/pki/server" --tokens "$T/state/tokens.json" \
		--outdir "$out" --sendas-map "$T/sendas.json" --log "$T/$name.log" --lifetime 400 \
		--token-sessions "$@" > "$T/$name.port" 2> "$T/$name.err" &
}
exo exoa "$T/outa" --data-delay 0.4; APID=$!
exo exob "$T/outb" --revoke-after 3; BPID=$!
TOK=$(port_of tok)
EXOA=$(port_of exoa)
EXOB=$(port_of exob)
[ -n "$TOK" ] && [ -n "$EXOA" ] && [ -n "$EXOB" ] || { echo "FAIL: fakes did not start: $(cat "$T"/*.err)"; exit 1; }

printf '%s\n' "$SECRET" > "$T/client.secret"
chmod 600 "$T/client.secret"
mkconf() {	# mkconf PORT
	cat > "$T/sendmail.conf" <<CONF
smtp = { host = "localhost"; port = $1; timeout = 10; tls = "starttls"; helo = "web1.example.com"; };
tls = { ca_file = "$T/pki/ca.pem"; };
auth = { user = "relay@contoso.com"; mechanism = "xoauth2"; };
from = { address = "relay@contoso.com"; rewrite = "local"; };
queue = { dir = "$T/spool"; user = "$QU"; };
oauth = { authority = "https://127.0.0.1:$TOK"; tenant = "contoso.onmicrosoft.com";
          client_id = "app-client"; client_secret_file = "$T/client.secret"; };
CONF
}
mkconf "$EXOA"
C="-C $T/sendmail.conf"
$W $BIN $C --init > "$T/init.out" 2>&1 || { echo "FAIL: --init: $(cat "$T/init.out")"; exit 1; }
Q=$T/spool/queue
F=$T/spool/failed

msg() {	# msg N: complete headers, so the bytes on the wire are known
	printf 'From: relay@contoso.com\nTo: bob@example.org\nSubject: m%s\nDate: Thu, 26 Nov 2026 00:00:00 +0000\nMessage-ID: <m%s@example.org>\n\nbody %s\n' "$1" "$1" "$1"
}
queue1() { msg "$1" | $W $BIN $C -odq -i bob@example.org || fail "queueing m$1"; }
runq() { $W $BIN $C -v -q > "$T/run.out" 2>&1; RC=$?; echo "--- run" >> "$T/all.out"; cat "$T/run.out" >> "$T/all.out"; }
nq() { ls "$Q"/*.env 2>/dev/null | wc -l; }
ntok() { grep -c '"grant_type": "client_credentials"' "$T/state/requests.log" 2>/dev/null || true; }
copies() {	# copies DIR N: how many delivered .eml in DIR are m N, exactly
	local f n=0
	for f in "$1"/*.eml; do
		[ -f "$f" ] || continue
		cmp -s "$f" <(msg "$2" | sed 's/$/\r/') && n=$((n + 1))
	done
	echo $n
}
once() {	# once DIR FIRST LAST: each of mFIRST..mLAST delivered exactly once
	local i
	for i in $(seq "$2" "$3"); do
		[ "$(copies "$1" "$i")" = 1 ] || { echo "m$i delivered $(copies "$1" "$i") times"; return 1; }
	done
	return 0
}

# --- a run that outlives its token: new sessions, fresh tokens, all once
for i in $(seq 1 12); do queue1 $i; done
c0=$(ntok)
runq
na=$(grep -c 'auth xoauth2 user=relay@contoso.com ok' "$T/exoa.log")
nt=$(( $(ntok) - c0 ))
[ "$RC" = 0 ] && [ "$(nq)" = 0 ] && [ -z "$(ls "$F")" ] && once "$T/outa" 1 12 &&
	[ "$(ls "$T/outa"/*.eml | wc -l)" = 12 ] && ok "token outlived: all 12 delivered exactly once in one run" ||
	fail "token outlived: rc=$RC queue=$(nq) failed=$(ls "$F") $(once "$T/outa" 1 12) $(tail -n 12 "$T/run.out")"
# 12 x 0.4 s is at least 4.8 s: a 603 s token is within the margin after 3 s
[ "$na" -ge 2 ] && [ "$nt" = "$na" ] && ok "token outlived: $na sessions, each with a freshly requested token" ||
	fail "token outlived: $na sessions, $nt token requests"
grep -q "the session's token expires in [0-9]*s: new session" "$T/run.out" &&
	ok "token outlived: -v says why a new session starts" || fail "token outlived: $(tail -n 12 "$T/run.out")"
grep -q 'session invalidated' "$T/exoa.log" && fail "token outlived: a session outlived its token at the server" ||
	ok "token outlived: no session was cut by the server"
grep -q 'deferred\|queue held' "$T/run.out" && fail "token outlived: something deferred or held" ||
	ok "token outlived: nothing deferred or held"

# --- the server revokes the token mid-run and ends the session
users 3599
rm -f "$T/spool/state/access-token"
mkconf "$EXOB"
for i in $(seq 21 28); do queue1 $i; done
c0=$(ntok)
runq
[ "$RC" = 0 ] && [ "$(nq)" = 0 ] && [ -z "$(ls "$F")" ] && once "$T/outb" 21 28 &&
	[ "$(ls "$T/outb"/*.eml | wc -l)" = 8 ] && ok "revoked mid-run: all 8 delivered exactly once in one run" ||
	fail "revoked mid-run: rc=$RC queue=$(nq) failed=$(ls "$F") $(once "$T/outb" 21 28) $(tail -n 12 "$T/run.out")"
grep -q 'session invalidated: token revoked' "$T/exob.log" && grep -q 'auth xoauth2 user=relay@contoso.com revoked' "$T/exob.log" &&
	ok "revoked mid-run: the server ended the session and refused the token" ||
	fail "revoked mid-run: the fake did not act: $(cat "$T/exob.log")"
[ "$(( $(ntok) - c0 ))" = 2 ] && ok "revoked mid-run: one token, then exactly one forced refresh" ||
	fail "revoked mid-run: $(( $(ntok) - c0 )) token requests"
[ "$(grep -c 'token refused (535 5.7.3): refreshing it once' "$T/run.out")" = 1 ] &&
	grep -q 'the session ended before the message (421 4.7.0' "$T/run.out" &&
	ok "revoked mid-run: -v tells the new session and the one refresh" || fail "revoked mid-run: $(tail -n 12 "$T/run.out")"
grep -q 'queue held\|deferred\|ALERT' "$T/run.out" && fail "revoked mid-run: held, deferred or alerted" ||
	ok "revoked mid-run: no hold, no alert, nothing deferred"
grep -l '^Bounce: 1' "$Q"/*.env > /dev/null 2>&1 && fail "revoked mid-run: a bounce was queued" ||
	ok "revoked mid-run: no bounce"

# --- no secret anywhere in what we printed or logged
$PY - "$T" "$SECRET" <<'PY' || FAILS=$((FAILS + 1))
import glob, json, os, sys
T, secret = sys.argv[1], sys.argv[2]
needles = [secret] + list(json.load(open(os.path.join(T, "state", "tokens.json"))).keys())
files = [os.path.join(T, n) for n in ("all.out", "exoa.log", "exob.log", "init.out")]
files += glob.glob(os.path.join(T, "spool", "queue", "*")) + glob.glob(os.path.join(T, "out?", "*"))
bad = 0
for f in files:
    data = open(f, "rb").read().decode("utf-8", "replace")
    for n in needles:
        if n and n in data:
            print("FAIL: a secret (%d bytes) in %s" % (len(n), f)); bad += 1
print("ok: searched %d files for %d tokens and the secret" % (len(files), len(needles)))
sys.exit(1 if bad else 0)
PY

[ $FAILS = 0 ] && echo "sendmail_xoauth2_midrun: all passed" || echo "sendmail_xoauth2_midrun: $FAILS failed"
[ $FAILS = 0 ]
