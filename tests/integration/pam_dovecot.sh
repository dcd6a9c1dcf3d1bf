#!/usr/bin/env bash
# pam_dovecot.sh BUILD SOURCE: pam_o365.so (imap-login) through the real
# pamtester and libpam against a private Dovecot.
#   - every hard-password user of tests/fake/dovecot.sh logs in (space, quotes,
#     backslash, braces, %*, UTF-8, 500 bytes), and acct_mgmt/setcred succeed
#   - a wrong password and an unknown user are refused (PAM_AUTH_ERR)
#   - a user name with CR LF sends nothing: Dovecot sees no new connection
#   - out-of-scope users (root, deny_users) are ignored without a prompt
#   - pamtester's own output never shows a password
# The service file is /etc/pam.d/o365-test-<random>, removed by the trap.
# Our code runs through $O365_WRAP (the valgrind runner sets it).
# imap.timeout is 60 s: every attempt here is meant to finish, and on a
# loaded CI machine (or under valgrind) a TLS handshake plus a Dovecot
# auth round can take longer than the 10 s an admin would configure.
set -euo pipefail
BUILD=$(cd "${1:?usage: pam_dovecot.sh BUILD SOURCE}" && pwd)
SRC=$(cd "${2:?usage: pam_dovecot.sh BUILD SOURCE}" && pwd)
MODULE=$BUILD/pam_o365/pam_o365.so
WRAP=${O365_WRAP:-}

[ -f "$MODULE" ] || { echo "FAIL: $MODULE not built"; exit 1; }
[ -x /usr/bin/pamtester ] || { echo "FAIL: pamtester missing"; exit 1; }
. "$SRC/tests/integration/lib/pam.bash"
pam_workdir o365-pam-dovecot o365-test

dovecot_start
[ -n "$port" ] || fail "dovecot did not start"

cat > "$tmp/pam_o365.conf" <<EOF
auth = { method = "imap-login"; };
imap = { host = "localhost"; port = $port; timeout = 60; };
tls = { ca_file = "$tmp/pki/ca.pem"; };
scope = { deny_users = [ "mallory" ]; };
EOF
cat > "/etc/pam.d/$svc" <<EOF
auth     required  $MODULE config=$tmp/pam_o365.conf
account  required  $MODULE config=$tmp/pam_o365.conf
EOF

# pt USER PASSWORD OPS...: run pamtester, output in $tmp/pt.out, returns its status
pt() {
	pamtester_to "$tmp/pt.out" "$@"
}
# on failure: the same check through o365-authtest, which prints each step
diagnose() { printf '%s\n' "$2" | "$BUILD/pam_o365/o365-authtest" "$1" -c "$tmp/pam_o365.conf" -d || true; }
# refused USER PASSWORD OPS...: pamtester must fail with its plain status 1
# (under valgrind, an error gives --error-exitcode instead)
refused() {
	local rc=0
	pt "$@" || rc=$?
	[ "$rc" -eq 1 ] || { cat "$tmp/pt.out"; fail "$1: pamtester status $rc, want 1"; }
}
connections() { grep -c 'imap-login: ' "$tmp/dovecot/dovecot.log" || true; }
# Dovecot's log process writes a connection's line after the client has
# gone, so a count taken right after an attempt may still grow.  settled:
# the count once it has not changed for half a second (bounded: 10 s).
settled() {
	local last=-1 now same=0
	for _ in $(seq 1 100); do
		now=$(connections)
		if [ "$now" = "$last" ]; then
			same=$((same + 1))
			[ $same -ge 5 ] && break
		else
			same=0
			last=$now
		fi
		sleep 0.1
	done
	echo "$now"
}

# every account of the private Dovecot, exactly as listed
# (O365_PAM_QUICK=N: only the first N, for the valgrind run)
quick=${O365_PAM_QUICK:-0}
n=0
while IFS=$'\t' read -r user pw; do
	[ -n "$user" ] || continue
	pt "$user" "$pw" authenticate acct_mgmt setcred ||
		{ cat "$tmp/pt.out"; diagnose "$user" "$pw"; fail "$user (${#pw} characters) was refused"; }
	grep -q "successfully authenticated" "$tmp/pt.out" || fail "$user: no success line"
	if grep -qF -- "$pw" "$tmp/pt.out"; then fail "$user: password echoed"; fi
	n=$((n + 1))
	[ "$quick" -gt 0 ] && [ "$n" -ge "$quick" ] && break
done < "$tmp/dovecot/users.txt"
[ "$n" -ge 5 ] || [ "$quick" -gt 0 ] || fail "only $n accounts in users.txt"
echo "ok: $n hard-password users logged in"

first=$(head -n1 "$tmp/dovecot/users.txt" | cut -f1)
refused "$first" "wrong-password-marker-4410" authenticate
grep -q "Authentication failure" "$tmp/pt.out" || { cat "$tmp/pt.out"; fail "wrong password: not PAM_AUTH_ERR"; }
refused "nosuchuser" "whatever-pw" authenticate
grep -q "Authentication failure" "$tmp/pt.out" || fail "unknown user: not PAM_AUTH_ERR"
echo "ok: wrong password and unknown user refused"

# CR LF in the user name: refused before connecting.  Dovecot logs one
# imap-login line per connection; a wrong password afterwards is the marker
# that logging caught up (poll for it, bounded).
before=$(settled)
refused $'alice\r\nA1 LOGOUT' "x" authenticate
refused $'alice\nx' "x" authenticate
pt "$first" "wrong-password-marker-4410" authenticate || true
for _ in $(seq 1 100); do
	[ "$(connections)" -gt "$before" ] && break
	sleep 0.1
done
after=$(settled)
[ "$after" -eq $((before + 1)) ] ||
	fail "CRLF user: $((after - before)) connections seen (want only the marker's 1)"
echo "ok: CRLF in the user name sent nothing"

# out of scope: root and deny_users; no prompt (pamtester would show "Password:")
for u in root mallory; do
	refused "$u" "x" authenticate
	if grep -q "Password:" "$tmp/pt.out"; then fail "$u was prompted"; fi
done
echo "ok: root and deny_users not checked"

# Local accounts through nss_wrapper (the test must not touch /etc/passwd):
# alice (uid 1500), space (uid 999, below min_uid), quote (in group wheel).
NSSW=/usr/lib/x86_64-linux-gnu/libnss_wrapper.so
[ -f "$NSSW" ] || NSSW=$(find /usr/lib* -name libnss_wrapper.so 2>/dev/null | head -n1)
[ -n "$NSSW" ] || fail "nss_wrapper missing (libnss-wrapper)"
cat > "$tmp/passwd" <<EOF
root:x:0:0:root:/root:/bin/bash
alice:x:1500:1500:Alice:/nonexistent:/bin/false
space:x:999:999:Space:/nonexistent:/bin/false
quote:x:1501:1501:Quote:/nonexistent:/bin/false
EOF
cat > "$tmp/group" <<EOF
root:x:0:
alice:x:1500:
space:x:999:
quote:x:1501:
wheel:x:10:quote
EOF
nss() { LD_PRELOAD=$NSSW NSS_WRAPPER_PASSWD=$tmp/passwd NSS_WRAPPER_GROUP=$tmp/group "$@"; }
pw_of() { awk -F'\t' -v u="$1" '$1 == u { print substr($0, length(u) + 2); exit }' "$tmp/dovecot/users.txt"; }

cat > "$tmp/scope.conf" <<EOF
imap = { host = "localhost"; port = $port; timeout = 60; };
tls = { ca_file = "$tmp/pki/ca.pem"; };
scope = { deny_groups = [ "wheel" ]; };
EOF
echo "auth required $MODULE config=$tmp/scope.conf" > "/etc/pam.d/$svc"
nss pt alice "$(pw_of alice)" authenticate || { cat "$tmp/pt.out"; fail "local alice refused"; }
for u in space quote; do
	nss refused "$u" "$(pw_of "$u")" authenticate
	if grep -q "Password:" "$tmp/pt.out"; then fail "$u (out of scope) was prompted"; fi
done
echo "ok: local accounts: min_uid and deny_groups through NSS"

# the shipped stack (etc/pam.d/o365-common-auth): pam_unix first (alice has
# no local password, so it fails), then pam_o365 with the password pam_unix
# asked for, pam_faillock around them (its tally in $tmp)
sed -e "s|pam_o365.so|$MODULE config=$tmp/pam_o365.conf|" \
    -e "s|pam_faillock.so \(.*\)|pam_faillock.so \1 dir=$tmp/faillock|" \
    "$SRC/etc/pam.d/o365-common-auth" > "/etc/pam.d/$svc"
mkdir -p "$tmp/faillock"
nss pt alice "$(pw_of alice)" authenticate || { cat "$tmp/pt.out"; fail "example stack refused alice"; }
[ "$(grep -c "Password:" "$tmp/pt.out")" -eq 1 ] || fail "example stack asked more than once"
nss refused alice "wrong-password-marker-4410" authenticate
[ -s "$tmp/faillock/alice" ] || fail "pam_faillock did not count the failure"
echo "ok: the example stack with pam_unix and pam_faillock"

# the shipped etc/pam.d/o365-only: in-scope users only, also in the account
# stack (scope rules).  Its pam_unix account line is left out: pam_unix
# reads /etc/passwd itself and does not see nss_wrapper's accounts.
sed -e "s|pam_o365.so|$MODULE config=$tmp/scope.conf|" -e '/^account.*pam_unix.so/d' \
    "$SRC/etc/pam.d/o365-only" > "/etc/pam.d/$svc"
nss pt alice "$(pw_of alice)" authenticate acct_mgmt || { cat "$tmp/pt.out"; fail "o365-only refused alice"; }
nss refused root "x" authenticate
nss refused quote "$(pw_of quote)" acct_mgmt		# deny_groups: PAM_IGNORE, ignore=bad
echo "ok: the o365-only example: only users in scope, also in the account stack"

# no environment variable changes what the module trusts: the test CA
# offered in SSL_CERT_FILE / SSL_CERT_DIR must not be used
cat > "$tmp/system-ca.conf" <<EOF
imap = { host = "localhost"; port = $port; timeout = 60; };
EOF
echo "auth required $MODULE config=$tmp/system-ca.conf" > "/etc/pam.d/$svc"
SSL_CERT_FILE=$tmp/pki/ca.pem SSL_CERT_DIR=$tmp/pki refused alice "$(pw_of alice)" authenticate
grep -q "cannot retrieve authentication info" "$tmp/pt.out" || fail "SSL_CERT_FILE: not PAM_AUTHINFO_UNAVAIL"
echo "ok: SSL_CERT_FILE and SSL_CERT_DIR ignored"
echo PASS
