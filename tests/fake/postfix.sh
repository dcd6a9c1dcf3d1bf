#!/usr/bin/env bash
# postfix.sh: a private Postfix submission server for tests (Debian 12's
# Postfix 3.7, run as root with its own config, queue and data directories).
#
#   postfix.sh start DIR PKIDIR [USER PASSWORD]...
#       Makes DIR (must be empty or missing), writes DIR/etc/main.cf and
#       master.cf, starts a private Dovecot (DIR/dovecot/) that does SASL
#       for Postfix from a passwd-file holding every USER with its PASSWORD
#       (any bytes but NUL, CR, LF and ':'; spaces and quotes are fine),
#       then starts Postfix.  Prints "PORT <n>" on stdout once the listener
#       answers with its 220 banner, then exits 0 (both keep running in the
#       background).  Exit 1 with a message on stderr (and everything
#       stopped again) if it does not come up within 30 s.
#   postfix.sh stop DIR
#       postfix stop and Dovecot's master stopped, then waits (bounded)
#       until both master processes are gone, SIGKILLing them if they
#       linger.  Safe when nothing is running.
#
# The one service is submission on 127.0.0.1:<ephemeral port> (no port 25):
#   - STARTTLS required (smtpd_tls_security_level=encrypt) with PKIDIR/
#     server.pem + server.key (tests/fake/mkcerts.sh), AUTH PLAIN and LOGIN
#     only after TLS (smtpd_tls_auth_only), checked by Dovecot SASL (Debian's
#     Postfix ignores cyrus_sasl_config_path, so a private Cyrus sasldb
#     cannot be used without touching /etc);
#   - once authenticated, any recipient in any domain is accepted; every
#     message is delivered through a pipe transport (user nobody) that
#     writes it to DIR/out/<n>.eml exactly as Postfix hands it over (LF line
#     ends, dots unstuffed, its own Received: header removed, nothing added)
#     and its envelope to DIR/out/<n>.env:
#         MAIL FROM:<sender>
#         RCPT TO:<recipient>        (one line per recipient)
#     <n> counts from 1.  The .env file is renamed into place first, the
#     .eml file last: poll for <n>.eml.
#   - DIR/maillog is Postfix's log, DIR/dovecot.log Dovecot's.
# Several instances can run at once with distinct DIRs.
set -euo pipefail

die() { echo "postfix.sh: $*" >&2; exit 1; }

pid_of() {		# pid_of PIDFILE: print the pid if that process runs
	local pid
	[ -r "$1" ] || return 1
	pid=$(tr -dc 0-9 < "$1")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

kill_wait() {		# kill_wait PID: wait (bounded) for it to go, then KILL
	local pid=$1 i
	for i in $(seq 1 100); do	# 10 s
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

free_port() {
	/usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

banner() {		# banner PORT: the listener answers with 220
	/usr/bin/python3 - "$1" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.settimeout(5)
    ok = s.recv(4).startswith(b"220")
    s.close()
    sys.exit(0 if ok else 1)
except OSError:
    sys.exit(1)
PY
}

write_dovecot() {	# write_dovecot DIR USER PASSWORD...
	local dir=$1
	shift
	mkdir -p "$dir/dovecot/run"
	: > "$dir/dovecot/users"
	while [ $# -ge 2 ]; do
		case $1$2 in
		*:*|*$'\n'*|*$'\r'*) die "':', CR or LF in a user name or password" ;;
		esac
		printf '%s:{PLAIN}%s\n' "$1" "$2" >> "$dir/dovecot/users"
		shift 2
	done
	[ $# -eq 0 ] || die "USER without PASSWORD"
	chown root:dovecot "$dir/dovecot/users"
	chmod 640 "$dir/dovecot/users"
	cat > "$dir/dovecot/dovecot.conf" <<EOF
base_dir = $dir/dovecot/run
state_dir = $dir/dovecot/run
instance_name = postfix-test-$(basename "$dir")
log_path = $dir/dovecot.log
protocols = none
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_format = %u
auth_failure_delay = 0
passdb {
  driver = passwd-file
  args = scheme=PLAIN $dir/dovecot/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
service auth {
  unix_listener $dir/dovecot/auth-client {
    mode = 0660
    user = postfix
    group = postfix
  }
}
EOF
}

write_postfix() {	# write_postfix DIR PKIDIR PORT
	local dir=$1 pki=$2 port=$3
	cat > "$dir/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.test
mydomain = test
myorigin = postfix.test
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
syslog_name = postfix-test
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
biff = no
smtputf8_enable = yes
notify_classes =
delay_warning_time = 0
smtpd_error_sleep_time = 0
smtpd_banner = \$myhostname ESMTP test
in_flow_delay = 0

# submission: TLS first, then AUTH, then anything goes
smtpd_tls_security_level = encrypt
smtpd_tls_auth_only = yes
smtpd_tls_cert_file = $pki/server.pem
smtpd_tls_key_file = $pki/server.key
smtpd_tls_loglevel = 1
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = $dir/dovecot/auth-client
smtpd_sasl_security_options = noanonymous
smtpd_client_restrictions =
smtpd_helo_restrictions =
smtpd_sender_restrictions =
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject

# deliver everything to the capture script, unchanged
transport_maps = static:capture:capture
capture_destination_recipient_limit = 1000
local_header_rewrite_clients =
remote_header_rewrite_domain =
always_add_missing_headers = no
header_checks = regexp:$dir/etc/header_checks
EOF
	printf '/^Received: /\tIGNORE\n' > "$dir/etc/header_checks"
	cat > "$dir/etc/master.cf" <<EOF
127.0.0.1:$port inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
postlog   unix-dgram n - n - 1 postlogd
capture   unix  - n n - - pipe
  flags= user=nobody null_sender= argv=$dir/capture.sh $dir/out \${sender} \${recipient}
EOF
}

write_capture() {	# write_capture DIR
	cat > "$1/capture.sh" <<'EOF'
#!/bin/sh
# capture.sh OUTDIR SENDER RECIPIENT...: store one delivered message.
out=$1
sender=$2
shift 2
n=1
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
EOF
	chmod 755 "$1/capture.sh"
}

stop_postfix() {
	local dir=$1 pid
	[ -f "$dir/etc/main.cf" ] || return 0
	pid=$(pid_of "$dir/queue/pid/master.pid") || return 0
	postfix -c "$dir/etc" stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
	kill_wait "$pid" || die "Postfix master $pid of $dir does not die"
}

stop_dovecot() {
	local dir=$1 pid
	pid=$(pid_of "$dir/dovecot/run/master.pid") || return 0
	kill -TERM "$pid" 2>/dev/null || true
	kill_wait "$pid" || die "Dovecot master $pid of $dir does not die"
}

stop() {
	stop_postfix "$1"
	stop_dovecot "$1"
}

start() {
	local dir=$1 pki=$2 port try i
	shift 2
	[ "$(id -u)" = 0 ] || die "must run as root (Postfix's master)"
	command -v postfix >/dev/null || die "postfix is not installed"
	command -v dovecot >/dev/null || die "dovecot is not installed"
	[ -r "$pki/server.pem" ] && [ -r "$pki/server.key" ] || die "no $pki/server.pem or server.key"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	pki=$(cd "$pki" && pwd)
	[ -z "$(ls -A "$dir")" ] || die "$dir is not empty"
	chmod 755 "$dir"		# the pipe runs as nobody
	mkdir -p "$dir/etc" "$dir/queue" "$dir/data" "$dir/out"
	chown postfix "$dir/data"
	chown nobody "$dir/out"
	write_capture "$dir"
	write_dovecot "$dir" "$@"
	trap 'stop "$dir"' EXIT		# undone once Postfix answers
	dovecot -c "$dir/dovecot/dovecot.conf" </dev/null >/dev/null || die "dovecot did not start (see $dir/dovecot.log)"
	for i in $(seq 1 100); do	# 10 s
		[ -S "$dir/dovecot/auth-client" ] && break
		sleep 0.1
	done
	[ -S "$dir/dovecot/auth-client" ] || die "Dovecot's auth socket did not appear"
	for try in 1 2 3 4 5; do	# another process may take the free port first
		port=$(free_port)
		write_postfix "$dir" "$pki" "$port"
		postfix -c "$dir/etc" check >/dev/null 2>&1 || postfix -c "$dir/etc" check >&2 ||
			die "postfix check failed"
		if ! postfix -c "$dir/etc" start >/dev/null 2>&1; then
			stop_postfix "$dir"
			continue
		fi
		for i in $(seq 1 150); do	# 30 s
			if banner "$port"; then
				trap - EXIT
				echo "PORT $port"
				return 0
			fi
			pid_of "$dir/queue/pid/master.pid" >/dev/null || break
			sleep 0.2
		done
		stop_postfix "$dir"
	done
	[ -r "$dir/maillog" ] && tail -n 20 "$dir/maillog" >&2
	die "Postfix did not come up"
}

case ${1:-} in
start)	[ $# -ge 3 ] || die "usage: postfix.sh start DIR PKIDIR [USER PASSWORD]..."
	shift
	start "$@" ;;
stop)	[ $# -eq 2 ] || die "usage: postfix.sh stop DIR"
	stop "$2" ;;
*)	die "usage: postfix.sh start DIR PKIDIR [USER PASSWORD]... | stop DIR" ;;
esac
