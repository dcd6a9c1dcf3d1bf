#!/bin/bash
# sendmail_frontend.sh: o365-sendmail (the program callers start for every
# message) must not map OpenSSL, libcurl or json-c; the modes that talk to
# the network run in o365-sendmail-runner, which it execs.
#   - no DT_NEEDED entry and nothing in ldd's closure for libssl, libcrypto,
#     libcurl, libjson-c (o365-sendmail and o365-sendmail-test);
#   - at run time (LD_DEBUG=libs) a -bv and a -bp load libconfig (the
#     detector works) and none of those libraries;
#   - -q, which must reach the network, does load libssl: through the
#     runner, which the front end execs (argv unchanged); no libcurl, also
#     when auth.mechanism is xoauth2 (the runner loads the token module
#     only in a child per token: sendmail_xoauth2.sh checks a delivery);
#   - the installed front end names the libexec runner;
#   - neither installed program reads a test-only variable (the test clock,
#     the write fault hook).
# Runs as any user; needs no network and no queue user.
set -u
W=${O365_WRAP:-}	# unused: LD_DEBUG output is what is checked here
BUILD=$(cd "$1" && pwd)
FRONT=$BUILD/sendmail-shim/o365-sendmail
TBIN=$BUILD/sendmail-shim/o365-sendmail-test
RUNNER=$BUILD/sendmail-shim/o365-sendmail-runner
OAUTH=$BUILD/sendmail-shim/o365-sendmail-runner-oauth
for b in "$FRONT" "$TBIN" "$RUNNER" "$OAUTH"; do
	[ -x "$b" ] || { echo "FAIL: $b not built"; exit 1; }
done
T=$(mktemp -d /tmp/o365-smf.XXXXXX)
TCONF=	# set when this test writes the build tree's sendmail-test config
trap 'rm -rf "$T" ${TCONF:+"$TCONF"}' EXIT
FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }
HEAVY='lib(ssl|crypto|curl|json-c)\.so'

for b in "$FRONT" "$TBIN"; do
	n=$(basename "$b")
	if readelf -d "$b" | grep NEEDED | grep -Eq "$HEAVY"; then
		fail "$n: NEEDED $(readelf -d "$b" | grep NEEDED | grep -Eo "$HEAVY" | tr '\n' ' ')"
	else
		ok "$n: no NEEDED entry for OpenSSL, libcurl, json-c"
	fi
	if ldd "$b" | grep -Eq "$HEAVY"; then
		fail "$n: ldd shows $(ldd "$b" | grep -Eo "$HEAVY" | tr '\n' ' ')"
	else
		ok "$n: ldd closure without them"
	fi
done
# the check itself: the runner does link OpenSSL, the oauth runner libcurl
readelf -d "$RUNNER" | grep NEEDED | grep -q 'libssl\.so' && ok "runner links libssl" ||
	fail "runner does not link libssl: the check above proves nothing"
# the runner for basic auth without libcurl and json-c (4.7 MB of RSS to load)
for b in "$RUNNER" "$BUILD/sendmail-shim/o365-sendmail-runner-test"; do
	readelf -d "$b" | grep NEEDED | grep -Eq 'lib(curl|json-c)\.so' &&
		fail "$(basename "$b") links libcurl or json-c" || ok "$(basename "$b"): no libcurl, json-c"
done
readelf -d "$OAUTH" | grep NEEDED | grep -q 'libcurl\.so' && ok "oauth runner links libcurl" ||
	fail "o365-sendmail-runner-oauth does not link libcurl"
readelf -d "$BUILD/sendmail-shim/o365-sendmail-oauth.so" | grep NEEDED | grep -q 'libcurl\.so' &&
	ok "the token module links libcurl" || fail "o365-sendmail-oauth.so does not link libcurl"

# run time: a config the -bv and -bp modes accept (no queue needed for -bv)
cat > "$T/sendmail.conf" <<CONF
smtp = { host = "127.0.0.1"; port = 9; timeout = 5; };
auth = { user = "relay@contoso.com"; password_file = "$T/secret"; };
from = { address = "relay@contoso.com"; };
queue = { dir = "$T/spool"; user = "o365-nouser-$$"; };
CONF
chmod 644 "$T/sendmail.conf"
C=()
[ "$(id -u)" = 0 ] && C=(-C "$T/sendmail.conf")
if [ "$(id -u)" = 0 ]; then
	LD_DEBUG=libs "$FRONT" "${C[@]}" -bv someone@contoso.com > "$T/bv.out" 2> "$T/bv.libs"
	grep -q 'someone@contoso.com' "$T/bv.out" && ok "-bv ran" || fail "-bv output: $(cat "$T/bv.out")"
	grep -q 'libconfig\.so' "$T/bv.libs" && ok "-bv: LD_DEBUG sees libconfig" ||
		fail "-bv: LD_DEBUG shows no libconfig: the check proves nothing"
	grep -Eq "$HEAVY" "$T/bv.libs" && fail "-bv loaded $(grep -Eo "$HEAVY" "$T/bv.libs" | sort -u | tr '\n' ' ')" ||
		ok "-bv: no OpenSSL, libcurl, json-c loaded"
	LD_DEBUG=libs "$FRONT" "${C[@]}" -bp > /dev/null 2> "$T/bp.libs"
	grep -Eq "$HEAVY" "$T/bp.libs" && fail "-bp loaded $(grep -Eo "$HEAVY" "$T/bp.libs" | sort -u | tr '\n' ' ')" ||
		ok "-bp: no OpenSSL, libcurl, json-c loaded"
	# -q: the front end execs the build-tree runner (test variant), which loads them
	LD_DEBUG=libs "$TBIN" "${C[@]}" -q > /dev/null 2> "$T/q.libs"
	grep -q 'libssl\.so' "$T/q.libs" && ok "-q runs in the runner (libssl loaded after exec)" ||
		fail "-q: no libssl in LD_DEBUG output: the runner was not executed"
	grep -q 'queue user o365-nouser' "$T/q.libs" && ok "-q: the runner read the same -C config" ||
		fail "-q: the runner did not report the missing queue user: $(grep -v '^ *[0-9]*:' "$T/q.libs")"
	grep -q 'libcurl\.so' "$T/q.libs" && fail "-q (auth login) loaded libcurl" ||
		ok "-q with auth login: no libcurl loaded"
	# xoauth2: the runner itself runs the queue (and would fetch tokens in a
	# child); here it stops at the missing queue user, before any token
	sed 's/^auth = {/auth = { mechanism = "xoauth2";/' "$T/sendmail.conf" > "$T/xo.conf"
	printf 'oauth = { tenant = "contoso.onmicrosoft.com"; client_id = "c"; client_secret_file = "%s"; };\n' \
		"$T/secret" >> "$T/xo.conf"
	chmod 644 "$T/xo.conf"
	LD_DEBUG=libs "$TBIN" -C "$T/xo.conf" -q > /dev/null 2> "$T/xo.libs"
	grep -q 'libssl\.so' "$T/xo.libs" && grep -q 'queue user o365-nouser' "$T/xo.libs" &&
		ok "-q with xoauth2: the runner ran it" ||
		fail "-q with xoauth2: the runner did not run: $(grep -v '^ *[0-9]*:' "$T/xo.libs")"
	grep -Eq 'lib(curl|json-c)\.so|runner-oauth' "$T/xo.libs" &&
		fail "-q with xoauth2 loaded libcurl, json-c or the oauth runner" ||
		ok "-q with xoauth2: no libcurl, json-c, no oauth runner"
	# -odi: root waits for the attempt in the runner; anyone else cannot run
	# the queue, so the front end takes it like -odb (no runner, no OpenSSL).
	# An ordinary user may not name a config: write the test build's own.
	echo x | LD_DEBUG=libs "$TBIN" "${C[@]}" -odi someone@contoso.com > /dev/null 2> "$T/odi.libs"
	grep -q 'libssl\.so' "$T/odi.libs" && ok "-odi (root): the runner is executed" ||
		fail "-odi (root): no libssl loaded: the runner was not executed"
	TCONF=$BUILD/sendmail-test
	mkdir -p "$TCONF" && cp "$T/sendmail.conf" "$TCONF/sendmail.conf" && chmod 755 "$T" "$TCONF"
	echo x | setpriv --reuid=nobody --regid=nogroup --clear-groups env LD_DEBUG=libs \
		"$TBIN" -odi someone@contoso.com > /dev/null 2> "$T/odi-user.libs"
	grep -q 'libconfig\.so' "$T/odi-user.libs" && grep -q "$T/spool" "$T/odi-user.libs" &&
		ok "-odi (user): the front end read the test config and went for the spool" ||
		fail "-odi (user): $(grep -v '^ *[0-9]*:' "$T/odi-user.libs")"
	grep -Eq "$HEAVY" "$T/odi-user.libs" &&
		fail "-odi (user) loaded $(grep -Eo "$HEAVY" "$T/odi-user.libs" | sort -u | tr '\n' ' ')" ||
		ok "-odi (user): taken by the front end like -odb, no OpenSSL loaded"
fi
grep -q "libexec/o365-unix/o365-sendmail-runner" "$FRONT" && ok "o365-sendmail execs the libexec runner" ||
	fail "o365-sendmail does not name libexec/o365-unix/o365-sendmail-runner"

# the installed programs have no test hooks: a caller's environment cannot
# move the runner's clock or fake write errors (the -test builds do have them)
TESTENV='O365_TEST_CLOCK_OFFSET|O365_TEST_MINUTE|O365_TEST_EPOCH|O365_SENDMAIL_FAULT'
grep -aEq "$TESTENV" "$TBIN" "$BUILD/sendmail-shim/o365-sendmail-runner-test" &&
	ok "the test builds name the test variables (the check works)" ||
	fail "the test builds do not name $TESTENV: the check proves nothing"
for b in "$FRONT" "$RUNNER" "$OAUTH"; do
	grep -aEq "$TESTENV" "$b" && fail "$(basename "$b") reads $(grep -aEo "$TESTENV" "$b" | sort -u | tr '\n' ' ')" ||
		ok "$(basename "$b"): no test-only environment variable"
done

[ "$FAILS" = 0 ] || { echo "$FAILS failure(s)"; exit 1; }
echo "all ok"
