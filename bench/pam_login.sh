#!/usr/bin/env bash
# bench/pam_login.sh BUILD [SOURCE] [RUNS]: the median time of a PAM login
# through pamtester (pam_o365.so, imap-login, against the local private
# Dovecot) against the floor: the same IMAP LOGIN done by `openssl s_client`
# in the same run.  Prints both medians and the ratio (target <= 1.15).
# Runs alternate (pamtester, floor, pamtester, ...) so load affects both.
# Not part of ctest.  Needs root (Dovecot, /etc/pam.d).
set -euo pipefail
BUILD=$(cd "${1:?usage: pam_login.sh BUILD [SOURCE] [RUNS]}" && pwd)
SRC=$(cd "${2:-$(dirname "$0")/..}" && pwd)
RUNS=${3:-20}
MODULE=$BUILD/pam_o365/pam_o365.so
[ -f "$MODULE" ] || { echo "no $MODULE: build first" >&2; exit 1; }

WRAP=
. "$SRC/tests/integration/lib/pam.bash"
pam_workdir o365-bench o365-bench
dovecot_start
[ -n "$port" ] || { echo "dovecot did not start" >&2; exit 1; }
IFS=$'\t' read -r user pw < "$tmp/dovecot/users.txt"
cat > "$tmp/pam_o365.conf" <<EOF
imap = { host = "localhost"; port = $port; timeout = 10; };
tls = { ca_file = "$tmp/pki/ca.pem"; };
EOF
echo "auth required $MODULE config=$tmp/pam_o365.conf" > "/etc/pam.d/$svc"

# the IMAP command lines the floor sends; quoted as IMAP wants
q=${pw//\\/\\\\}
q=${q//\"/\\\"}
printf 'A1 LOGIN "%s" "%s"\r\nA2 LOGOUT\r\n' "$user" "$q" > "$tmp/floor.in"

now() { date +%s%N; }
pam_once() {
	printf '%s\n' "$pw" | /usr/bin/pamtester "$svc" "$user" authenticate >/dev/null 2>&1
}
floor_once() {
	openssl s_client -quiet -verify_return_error -CAfile "$tmp/pki/ca.pem" \
		-verify_hostname localhost -connect "localhost:$port" < "$tmp/floor.in" 2>/dev/null |
		grep -q '^A1 OK'
}

pam_ms=() floor_ms=()
pam_once && floor_once || { echo "warm-up login failed" >&2; exit 1; }
for _ in $(seq 1 "$RUNS"); do
	t=$(now); pam_once || { echo "pamtester login failed" >&2; exit 1; }
	pam_ms+=($(( ($(now) - t) / 1000 )))
	t=$(now); floor_once || { echo "openssl login failed" >&2; exit 1; }
	floor_ms+=($(( ($(now) - t) / 1000 )))
done
median() {
	printf '%s\n' "$@" | sort -n |
		awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2)}'
}
pm=$(median "${pam_ms[@]}")
fm=$(median "${floor_ms[@]}")
awk -v p="$pm" -v f="$fm" -v n="$RUNS" 'BEGIN {
	r = p / f
	printf "runs %d: pamtester median %.2f ms, floor (openssl s_client IMAP LOGIN) median %.2f ms\n", n, p / 1000, f / 1000
	printf "ratio %.3f (target <= 1.15)%s\n", r, (r <= 1.15) ? "" : "  OVER TARGET"
}'
