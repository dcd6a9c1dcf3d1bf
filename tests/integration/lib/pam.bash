# tests/integration/lib/pam.bash: the prelude shared by tests/integration/pam_*.sh
# and bench/pam_login.sh.  Sourced, never run (ctest runs only the *.sh files
# directly in tests/integration).  The caller has set -euo pipefail and sets
# SRC (the source tree), MODULE (pam_o365.so) and WRAP ($O365_WRAP or empty)
# before sourcing it.

fail() { echo "FAIL: $*"; exit 1; }

# A sanitized build (O365_SANITIZE): pamtester is not, so the ASan runtime
# must come first in LD_PRELOAD; leaks are valgrind's job (pam_valgrind.sh).
ASAN_RT=
if [ -f "${MODULE:-}" ]; then
	ASAN_RT=$(ldd "$MODULE" | awk '/libasan/ && !r {r = $3} END {print r}')
fi
with_asan() {
	if [ -n "$ASAN_RT" ]; then
		LD_PRELOAD="$ASAN_RT${LD_PRELOAD:+:$LD_PRELOAD}" \
		    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" "$@"
	else
		"$@"
	fi
}

# pam_workdir NAME [SVC_PREFIX]: $tmp = a fresh /tmp/NAME.XXXXXX; with
# SVC_PREFIX, $svc = SVC_PREFIX-<random> (the caller writes /etc/pam.d/$svc).
# On exit: pam_cleanup_hook (if the caller defined one), /etc/pam.d/$svc
# removed, every pid in $pids stopped, $tmp removed.
pam_workdir() {
	tmp=$(mktemp -d "/tmp/$1.XXXXXX")
	svc=
	[ -z "${2:-}" ] || svc=$2-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
	pids=()
	trap pam_cleanup EXIT
}
pam_cleanup() {
	local p
	if declare -F pam_cleanup_hook >/dev/null; then pam_cleanup_hook || true; fi
	[ -z "$svc" ] || rm -f "/etc/pam.d/$svc"
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}

# start VAR NAME CMD...: a fake in the background, in this shell so the trap
# knows its pid; waits (bounded) for its "PORT n" line and sets VAR to n
start() {
	local var=$1 name=$2 i
	shift 2
	"$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
	pids+=($!)
	for i in $(seq 1 100); do
		grep -q '^PORT ' "$tmp/$name.out" 2>/dev/null && break
		sleep 0.1
	done
	printf -v "$var" '%s' "$(awk '/^PORT/ {print $2; exit}' "$tmp/$name.out")"
}

# dovecot_start: the test PKI in $tmp/pki and tests/fake/dovecot.sh in
# $tmp/dovecot (stopped on exit); sets $port (empty when it did not start)
dovecot_start() {
	chmod 711 "$tmp"	# Dovecot's unprivileged processes read files below
	bash "$SRC/tests/fake/mkcerts.sh" "$tmp/pki" >/dev/null
	pam_cleanup_hook() {
		bash "$SRC/tests/fake/dovecot.sh" stop "$tmp/dovecot" >/dev/null 2>&1 || true
	}
	port=$(bash "$SRC/tests/fake/dovecot.sh" start "$tmp/dovecot" "$tmp/pki" |
	    awk '/^PORT/ {print $2}')
}

# pamtester_to OUT USER PASSWORD OPS...: pamtester -v for $svc (through
# with_asan and $WRAP), the password on stdin, all output in OUT; its status
pamtester_to() {
	local out=$1 user=$2 pw=$3
	shift 3
	printf '%s\n' "$pw" | with_asan ${WRAP:-} /usr/bin/pamtester -v "$svc" "$user" "$@" >"$out" 2>&1
}

# no_secret_in PASSWORD TOKENS_JSON FILE...: fail when a file holds the
# password, or any token fake_token.py issued (listed in TOKENS_JSON, which
# must not be empty) or its first 16 characters
no_secret_in() {
	local pw=$1 tokens=$2 f
	shift 2
	for f in "$@"; do
		if grep -qF -- "$pw" "$f"; then fail "password in $f"; fi
	done
	/usr/bin/python3 - "$tokens" "$@" <<'PY'
import json, sys
tokens = json.load(open(sys.argv[1]))
assert tokens, "no token was issued"
for path in sys.argv[2:]:
    text = open(path, encoding="utf-8", errors="replace").read()
    for tok in tokens:
        if tok in text or tok[:16] in text:
            sys.exit("token found in " + path)
PY
}
