/*
 * cli.c: the modes o365-sendmail handles without the network (see cli.h):
 * submission (-bm, -t, -i, -f, -odq, -odb), -bs, -bv, -bp/mailq and queue
 * control.  Compiled into both programs; links no OpenSSL, libcurl or json-c.
 *
 * Exit codes from sysexits.h, one line on stderr for every failure.  Exit 0
 * from a submission means the message and its envelope are on disk and
 * fsynced (file and directory).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "control.h"

#ifndef SM_RUNNER_PATH
#error "SM_RUNNER_PATH: the back end program (o365-sendmail-runner)"
#endif

void
sm_cli_die(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", SM_PROG, line);
	syslog(LOG_MAIL | LOG_ERR, "%s", line);
}

int
sm_cli_exit(int code)
{
	switch (code) {
	case O365_OK:		return EX_OK;
	case O365_E_TEMP:	return EX_TEMPFAIL;	/* full disk, quota */
	case O365_E_TOOLONG:	return EX_DATAERR;
	case O365_E_INVAL:	return EX_DATAERR;
	case O365_E_PROTO:	return EX_DATAERR;
	case O365_E_CONFIG:	return EX_CONFIG;
	case O365_E_NOMEM:	return EX_OSERR;
	case O365_E_IO:		return EX_IOERR;
	default:		return EX_SOFTWARE;
	}
}

static void
sm_cli_usage(void)
{
	printf("usage: %s [options] [--] recipient...\n"
	    "  -t            recipients from To/Cc/Bcc (Bcc removed)\n"
	    "  -i, -oi       a line with a single dot does not end the message\n"
	    "  -f/-r ADDR    envelope sender (logged; the relay mailbox sends)\n"
	    "  -F NAME       full name for a From header we add\n"
	    "  -odb -odi -odq  deliver in the background (default), wait, queue only\n"
	    "  -bp (mailq)   list the queue      -q   run the queue now (root)\n"
	    "  --queue-runner  deliver what is due (the systemd timer and path unit)\n"
	    "  -bv ADDR...   show what would happen to each address\n"
	    "  -bs           SMTP on stdin/stdout\n"
	    "  -C FILE       another config (root only)   -v  verbose\n"
	    "  --init [DIR]  create the queue user and tree (root)\n"
	    "  --check       check the config and the secret (root)\n"
	    "  --hold ID|ALL     keep messages from being sent (root)\n"
	    "  --release ID|ALL  release held messages (ALL: the queue hold too)\n"
	    "  --retry ID|ALL    try at the next run, whatever the backoff\n"
	    "  --delete ID|ALL   remove messages without a bounce (root)\n"
	    "  --failed          list the messages in failed/ (root)\n"
	    "  --probe           connect, show TLS and capabilities, try AUTH (root)\n"
	    "  --test-send ADDR  send a test message now, show the SMTP transcript (root)\n"
	    "  --oauth-login sign in once for auth.mechanism xoauth2 (root)\n", SM_PROG);
}

static int
sm_cli_load(struct sm_cli *x)
{
	struct o365_error err;
	struct passwd *pw;
	const char *path = x->o.config != NULL ? x->o.config : SM_CONF_PATH;

	o365_error_clear(&err);
	if (sm_conf_load(path, &x->c, &err) != O365_OK) {
		sm_cli_die("%s", err.why);
		return err.code == O365_E_IO ? EX_CONFIG : EX_CONFIG;
	}
	if (sm_fqdn(x->fqdn, sizeof(x->fqdn)) != 0)
		snprintf(x->fqdn, sizeof(x->fqdn), "localhost");
	x->pol.rewrite = sm_conf_rewrite(&x->c);
	x->pol.relay = x->c.from_address;
	x->pol.fqdn = x->fqdn;
	x->pol.aliases = x->c.aliases;
	x->pol.aliases_file = x->c.aliases_file;
	x->pol.default_domain = sm_conf_domain(&x->c);
	if ((pw = getpwnam(x->c.queue_user)) != NULL) {
		x->quid = pw->pw_uid;
		x->qgid = pw->pw_gid;
		x->have_quser = 1;
	}
	return EX_OK;
}

int
sm_cli_need_root(const char *what)
{
	if (getuid() != 0 || geteuid() != 0) {
		sm_cli_die("%s: only root may do this", what);
		return EX_NOPERM;
	}
	return EX_OK;
}

int
sm_cli_need_quser(struct sm_cli *x)
{
	if (!x->have_quser) {
		sm_cli_die("queue user %s does not exist (run %s --init as root)", x->c.queue_user, SM_PROG);
		return EX_CONFIG;
	}
	return EX_OK;
}

/*
 * Start a detached runner (root): the caller does not wait for delivery.
 * The runner is the back end (SM_RUNNER_PATH), so this process never maps
 * OpenSSL; it gets the config this one was given.  None when a runner was
 * draining the queue after this message was committed: it looks again
 * after it releases the runner lock, so it will find the message.
 */
static void
spawn_runner(struct sm_cli *x)
{
	char *argv[5];
	pid_t pid;
	int fd, st, n = 0;

	argv[n++] = (char *)SM_RUNNER_PATH;
	argv[n++] = (char *)"--background-runner";
	if (x->o.config != NULL) {
		argv[n++] = (char *)"-C";
		argv[n++] = (char *)x->o.config;
	}
	argv[n] = NULL;
	if (x->drained)
		return;		/* the runner that is draining the queue will send it */
	if ((pid = fork()) == -1)
		return;		/* queued anyway: the timer will send it */
	if (pid == 0) {
		if (setsid() == -1 || (pid = fork()) == -1)
			_exit(0);
		if (pid != 0)
			_exit(0);
		if ((fd = open("/dev/null", O_RDWR | O_CLOEXEC)) != -1) {
			dup2(fd, 0);
			dup2(fd, 1);
			dup2(fd, 2);
		}
		/* nothing of the caller's (a pipe PHP or cron waits on) stays open */
		closelog();
		(void)close_range(3, ~0U, 0);
		execv(SM_RUNNER_PATH, argv);
		openlog(SM_PROG, LOG_PID, LOG_MAIL);
		syslog(LOG_MAIL | LOG_ERR, "cannot run %s: %m (the timer will send the queue)",
		    SM_RUNNER_PATH);
		_exit(1);
	}
	while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
		;
}

/* -f / MAIL FROM: one address, no blanks or control bytes (it may become a From header). */
static int
sender_ok(const char *s)
{
	size_t n = strlen(s);

	if (n > O365_MAX_ADDRESS)
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f || *s == '<' || *s == '>' || *s == '"' ||
		    *s == ',' || *s == '(' || *s == ')')
			return 0;
	return 1;
}

/*
 * Queue one message read from fd: recipients from rcpts (already parsed)
 * plus the headers with -t.  The EX_ code; *id_out gets the queue id (root).
 */
static int
submit(struct sm_cli *x, int fd, int dot_ends, int from_headers, const struct sm_addrs *rcpts,
    const char *sender, char id_out[SM_ID_LEN + 1])
{
	struct o365_error err;
	struct sm_queue q;
	struct sm_in in;
	struct sm_hdrs h;
	struct sm_env e;
	struct sm_ident id;
	struct passwd *pw;
	char user[64], gecos[256], *comma;
	size_t i;
	int r, rc = EX_OK, root = geteuid() == 0, qopen = 0;

	memset(&e, 0, sizeof(e));
	memset(&h, 0, sizeof(h));
	memset(&in, 0, sizeof(in));
	o365_error_clear(&err);
	/* who submits: the kernel's word (the real uid), never the environment */
	gecos[0] = '\0';
	if ((pw = getpwuid(getuid())) != NULL) {
		snprintf(user, sizeof(user), "%s", pw->pw_name);
		if (pw->pw_gecos != NULL) {
			snprintf(gecos, sizeof(gecos), "%s", pw->pw_gecos);
			if ((comma = strchr(gecos, ',')) != NULL)
				*comma = '\0';
		}
	} else {
		snprintf(user, sizeof(user), "%u", (unsigned)getuid());
	}
	id.user = user;
	id.fullname = x->o.fullname != NULL ? x->o.fullname : (gecos[0] ? gecos : NULL);
	id.sender = sender;
	id_out[0] = '\0';
	id.fqdn = x->fqdn;

	if (root && (rc = sm_cli_need_quser(x)) != EX_OK)
		return rc;
	if (sm_queue_open(&q, x->c.queue_dir, x->quid, x->qgid, &err) != O365_OK) {
		sm_cli_die("%s", err.why);
		return err.code == O365_E_CONFIG ? EX_CONFIG : EX_TEMPFAIL;
	}
	qopen = 1;
	if (sm_in_init(&in, fd, dot_ends, 65536) != O365_OK) {
		sm_cli_die("out of memory");
		rc = EX_OSERR;
		goto out;
	}
	if ((r = sm_hdrs_read(&in, &h)) != O365_OK) {
		if (r == O365_E_TOOLONG)
			sm_cli_die("header block larger than %d bytes or a header line longer than %d",
			    SM_MAX_HEADERS, SM_MAX_HEADER_LINE);
		else
			sm_cli_die("cannot read the message: %s", strerror(in.err ? in.err : EIO));
		rc = r == O365_E_TOOLONG ? EX_DATAERR : EX_IOERR;
		goto out;
	}
	for (i = 0; i < rcpts->n; i++) {
		if (sm_addrs_add(&e.rcpts, rcpts->v[i].addr, NULL) != O365_OK) {
			sm_cli_die("too many recipients");
			rc = EX_DATAERR;
			goto out;
		}
	}
	if (from_headers && (r = sm_hdrs_recipients(&h, &e.rcpts)) != O365_OK) {
		sm_cli_die("bad recipient address in the headers");
		rc = EX_DATAERR;
		goto out;
	}
	if (e.rcpts.n == 0) {
		sm_cli_die("no recipient addresses found%s", from_headers ? " in the header" : "");
		rc = EX_DATAERR;
		goto out;
	}
	sm_hdrs_drop_bcc(&h);
	if (sm_hdrs_complete(&h, &id) != O365_OK) {
		sm_cli_die("cannot complete the headers");
		rc = EX_SOFTWARE;
		goto out;
	}
	e.uid = getuid();
	snprintf(e.user, sizeof(e.user), "%s", user);
	if (sender != NULL)
		snprintf(e.sender, sizeof(e.sender), "%s", sender);
	else
		snprintf(e.sender, sizeof(e.sender), "%s@%s", user, x->fqdn);
	e.created = (long long)time(NULL);
	if (root)
		r = sm_queue_commit(&q, &e, &h, &in, &x->pol, &x->lg, &err);
	else
		r = sm_queue_drop(&q, &e, &h, &in, &err);
	if (r != O365_OK) {
		sm_cli_die("message not queued: %s", err.why);
		rc = sm_cli_exit(r);
		goto out;
	}
	if (root)
		o365_log(&x->lg, LOG_INFO, "%s: uid=%u user=%s sender=<%s> nrcpt=%zu size=%lld queued",
		    e.id, (unsigned)e.uid, e.user, e.sender, e.rcpts.n, (long long)e.size);
	/* durable now: a runner that holds the lock looks again before it ends */
	x->drained = root && x->o.deliv == SM_DELIV_BACKGROUND && sm_queue_runner_busy(&q);
	snprintf(id_out, SM_ID_LEN + 1, "%s", e.id);
	rc = EX_OK;
out:
	if (qopen)
		sm_queue_close(&q);
	sm_in_free(&in);
	sm_hdrs_free(&h);
	sm_env_free(&e);
	return rc;
}

static int
mode_send(struct sm_cli *x)
{
	struct sm_addrs rc = { 0 };
	char id[SM_ID_LEN + 1], unbr[O365_MAX_ADDRESS + 1];
	size_t i;
	int ex;

	for (i = 0; i < x->o.nrcpt; i++) {
		if (sm_addrs_parse(&rc, x->o.rcpts[i], strlen(x->o.rcpts[i])) != O365_OK) {
			sm_cli_die("bad recipient address: %s", x->o.rcpts[i]);
			sm_addrs_free(&rc);
			return EX_DATAERR;
		}
	}
	/* "-f <a@b>" (some callers add the brackets) */
	if (x->o.sender != NULL && x->o.sender[0] == '<' && strlen(x->o.sender) > 2 &&
	    x->o.sender[strlen(x->o.sender) - 1] == '>') {
		snprintf(unbr, sizeof(unbr), "%.*s", (int)strlen(x->o.sender) - 2, x->o.sender + 1);
		x->o.sender = unbr;
	}
	if (x->o.sender != NULL && !sender_ok(x->o.sender)) {
		sm_cli_die("bad sender address given with -f/-r");
		sm_addrs_free(&rc);
		return EX_DATAERR;
	}
	ex = submit(x, STDIN_FILENO, !x->o.ignore_dots, x->o.from_headers, &rc, x->o.sender, id);
	sm_addrs_free(&rc);
	if (ex != EX_OK)
		return ex;
	/* queued and synced: from here on the message is safe */
	if (geteuid() == 0 && x->o.deliv == SM_DELIV_INTERACTIVE && x->deliver_now != NULL)
		(void)x->deliver_now(x, id);
	else if (geteuid() == 0 && x->o.deliv == SM_DELIV_BACKGROUND)
		spawn_runner(x);
	/* not root: the systemd path unit on incoming/ (or the timer) picks it up */
	return EX_OK;
}

/* ---- -bs: SMTP on stdin/stdout (Symfony's default transport) ---- */

static void
smtp_reply(const char *fmt, ...) O365_PRINTF(1, 2);

static void
smtp_reply(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputs("\r\n", stdout);
	fflush(stdout);
}

/* The address between '<' and '>' after "FROM:" / "TO:"; "" for <>. */
static int
smtp_path(const char *arg, char *out, size_t size)
{
	const char *lt, *gt;

	while (*arg == ' ')
		arg++;
	if ((lt = strchr(arg, '<')) == NULL || (gt = strchr(lt, '>')) == NULL ||
	    (size_t)(gt - lt - 1) >= size)
		return -1;
	memcpy(out, lt + 1, (size_t)(gt - lt - 1));
	out[gt - lt - 1] = '\0';
	return 0;
}

static int
mode_smtp(struct sm_cli *x)
{
	struct sm_in in;
	struct sm_addrs rc = { 0 };
	char line[1024], addr[O365_MAX_ADDRESS + 1], sender[O365_MAX_ADDRESS + 1], id[SM_ID_LEN + 1];
	const char *p;
	size_t len, ll;
	int bol, r, have_mail = 0, ex, over;
	FILE *tf;

	if (sm_in_init(&in, STDIN_FILENO, 0, 65536) != O365_OK)
		return EX_OSERR;
	sender[0] = '\0';
	smtp_reply("220 %s o365-sendmail ESMTP ready", x->fqdn);
	while ((r = sm_in_piece(&in, sizeof(line) - 1, &p, &len, &bol)) == 1) {
		if (p[len - 1] != '\n') {
			/* too long: swallow the rest of it */
			while ((r = sm_in_piece(&in, sizeof(line) - 1, &p, &len, &bol)) == 1 && p[len - 1] != '\n')
				;
			smtp_reply("500 5.5.2 line too long");
			continue;
		}
		ll = len;
		while (ll > 0 && (p[ll - 1] == '\n' || p[ll - 1] == '\r'))
			ll--;
		memcpy(line, p, ll);
		line[ll] = '\0';
		if (strncasecmp(line, "EHLO", 4) == 0) {
			smtp_reply("250-%s\r\n250-8BITMIME\r\n250-SIZE %ld\r\n250 ENHANCEDSTATUSCODES",
			    x->fqdn, (long)SM_MAX_MESSAGE);
		} else if (strncasecmp(line, "HELO", 4) == 0) {
			smtp_reply("250 %s", x->fqdn);
		} else if (strncasecmp(line, "MAIL FROM:", 10) == 0) {
			if (have_mail) {
				smtp_reply("503 5.5.1 nested MAIL command");
			} else if (smtp_path(line + 10, sender, sizeof(sender)) != 0 ||
			    (sender[0] != '\0' && !sender_ok(sender))) {
				smtp_reply("501 5.1.7 bad sender address syntax");
			} else {
				have_mail = 1;
				smtp_reply("250 2.1.0 ok");
			}
		} else if (strncasecmp(line, "RCPT TO:", 8) == 0) {
			if (!have_mail)
				smtp_reply("503 5.5.1 need MAIL first");
			else if (smtp_path(line + 8, addr, sizeof(addr)) != 0 || addr[0] == '\0')
				smtp_reply("501 5.1.3 bad recipient address syntax");
			else if (sm_addrs_add(&rc, addr, NULL) != O365_OK)
				smtp_reply("452 4.5.3 too many recipients");
			else
				smtp_reply("250 2.1.5 ok");
		} else if (strcasecmp(line, "DATA") == 0) {
			if (rc.n == 0) {
				smtp_reply("503 5.5.1 need RCPT first");
				continue;
			}
			if ((tf = tmpfile()) == NULL) {
				smtp_reply("451 4.3.0 cannot store the message");
				continue;
			}
			smtp_reply("354 end with <CRLF>.<CRLF>");
			over = 0;
			while ((r = sm_in_piece(&in, 65536, &p, &len, &bol)) == 1) {
				if (bol && p[0] == '.') {
					if ((len == 2 && p[1] == '\n') || (len == 3 && p[1] == '\r' && p[2] == '\n'))
						break;
					p++;		/* RFC 5321 4.5.2: undo the transparency dot */
					len--;
				}
				if (ftell(tf) > SM_MAX_MESSAGE)
					over = 1;
				else if (fwrite(p, 1, len, tf) != len)
					over = 2;
			}
			if (r != 1) {
				fclose(tf);
				break;		/* the client went away mid-DATA: nothing queued */
			}
			if (over || fflush(tf) != 0 || fseek(tf, 0, SEEK_SET) != 0) {
				smtp_reply(over == 1 ? "552 5.3.4 message too big" : "451 4.3.0 cannot store the message");
			} else {
				ex = submit(x, fileno(tf), 0, 0, &rc, sender[0] ? sender : NULL, id);
				if (ex == EX_OK)
					smtp_reply("250 2.0.0 ok: queued%s%s", id[0] ? " as " : "", id);
				else if (ex == EX_DATAERR)
					smtp_reply("554 5.6.0 message refused");
				else
					smtp_reply("451 4.3.0 not queued, try again later");
				if (ex == EX_OK && geteuid() == 0 && x->o.deliv == SM_DELIV_BACKGROUND)
					spawn_runner(x);
			}
			fclose(tf);
			sm_addrs_free(&rc);
			have_mail = 0;
		} else if (strcasecmp(line, "RSET") == 0) {
			sm_addrs_free(&rc);
			have_mail = 0;
			smtp_reply("250 2.0.0 ok");
		} else if (strncasecmp(line, "NOOP", 4) == 0) {
			smtp_reply("250 2.0.0 ok");
		} else if (strncasecmp(line, "VRFY", 4) == 0) {
			smtp_reply("252 2.1.5 cannot verify, will try");
		} else if (strcasecmp(line, "QUIT") == 0) {
			smtp_reply("221 2.0.0 bye");
			break;
		} else {
			smtp_reply("502 5.5.2 command not recognised");
		}
	}
	sm_addrs_free(&rc);
	sm_in_free(&in);
	return EX_OK;
}

/* Submissions from other users not picked up yet (root can read incoming/). */
static void
print_waiting(struct sm_queue *q)
{
	struct dirent *de;
	DIR *d;
	int fd, n = 0;

	if ((fd = openat(q->incfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] == 'm')
			n++;
	closedir(d);
	if (n > 0)
		printf("-- %d submission%s waiting in incoming/ (picked up by the next run)\n", n,
		    n == 1 ? "" : "s");
}

static int
mode_list(struct sm_cli *x)
{
	struct o365_error err;
	struct sm_queue q;
	int r;

	o365_error_clear(&err);
	if (sm_queue_open(&q, x->c.queue_dir, x->quid, x->qgid, &err) != O365_OK) {
		sm_cli_die("%s", err.why);
		return sm_cli_exit(err.code);
	}
	if (q.qfd == -1) {
		sm_queue_close(&q);
		sm_cli_die("%s/queue: permission denied (only root may list the queue)", x->c.queue_dir);
		return EX_NOPERM;
	}
	r = sm_queue_print(&q, STDOUT_FILENO, &err);
	if (r == O365_OK) {
		print_waiting(&q);
		sm_ctl_print_hold(&q, &x->c, stdout);
	}
	sm_queue_close(&q);
	if (r != O365_OK) {
		sm_cli_die("%s", err.why);
		return sm_cli_exit(r);
	}
	return EX_OK;
}

static int
mode_control(struct sm_cli *x)
{
	struct o365_error err;
	struct sm_queue q;
	int r;

	o365_error_clear(&err);
	if ((r = sm_cli_need_root("queue control")) != EX_OK)
		return r;
	if (sm_queue_open(&q, x->c.queue_dir, x->quid, x->qgid, &err) != O365_OK) {
		sm_cli_die("%s", err.why);
		return sm_cli_exit(err.code);
	}
	if (x->o.mode == SM_MODE_FAILED) {
		r = sm_queue_print_failed(&q, STDOUT_FILENO, &err);
	} else {
		r = sm_ctl_apply(&q, &x->c, (enum sm_ctl_op)x->o.ctl_op, x->o.ctl_id, stdout, &x->lg,
		    &err);
		if (r >= 0 && strcmp(x->o.ctl_id, "ALL") == 0)
			printf("%d message%s %s\n", r, r == 1 ? "" : "s",
			    sm_ctl_done_name((enum sm_ctl_op)x->o.ctl_op));
	}
	sm_queue_close(&q);
	fflush(stdout);
	if (r < 0) {
		sm_cli_die("%s", err.why);
		return r == O365_E_INVAL ? EX_NOINPUT : sm_cli_exit(r);
	}
	return EX_OK;
}

static int
mode_verify(struct sm_cli *x)
{
	struct sm_addrs in = { 0 }, out = { 0 };
	char from[O365_MAX_ADDRESS + 300];
	size_t i, k;
	int rc = EX_OK;

	for (i = 0; i < x->o.nrcpt; i++) {
		if (sm_addrs_parse(&in, x->o.rcpts[i], strlen(x->o.rcpts[i])) != O365_OK) {
			printf("%s: bad address\n", x->o.rcpts[i]);
			rc = EX_DATAERR;
		}
	}
	for (i = 0; i < in.n; i++) {
		out.n = 0;
		if (sm_resolve_rcpt(&x->pol, in.v[i].addr, &out, &x->lg) != O365_OK) {
			printf("%s: cannot resolve\n", in.v[i].addr);
			rc = EX_DATAERR;
			continue;
		}
		printf("%s ->", in.v[i].addr);
		for (k = 0; k < out.n; k++)
			printf("%s %s", k ? "," : "", out.v[k].addr);
		printf(" (relayed via %s:%d)\n", x->c.smtp_host, x->c.smtp_port);
	}
	snprintf(from, sizeof(from), "%s@%s", getpwuid(getuid()) ? getpwuid(getuid())->pw_name : "?",
	    x->fqdn);
	if (x->c.from_address != NULL)
		printf("envelope sender: <%s>; From %s is %s\n", x->c.from_address, from,
		    x->pol.rewrite == SM_REWRITE_NEVER ? "kept" : "rewritten to the relay mailbox");
	else
		printf("from.address is not set: nothing can be relayed\n");
	sm_addrs_free(&in);
	sm_addrs_free(&out);
	return rc;
}

int
sm_cli_parse(struct sm_cli *x, int argc, char **argv)
{
	char why[512];

	memset(x, 0, sizeof(*x));
	signal(SIGPIPE, SIG_IGN);
	umask(077);
	if (sm_args_parse(argc, argv, &x->o, why, sizeof(why)) != 0) {
		fprintf(stderr, "%s: %s (see %s --help)\n", SM_PROG, why, SM_PROG);
		return EX_USAGE;
	}
	if (x->o.mode == SM_MODE_HELP) {
		sm_cli_usage();
		return EX_OK;
	}
	if (x->o.mode == SM_MODE_VERSION) {
		printf("%s %s\n", SM_PROG, SM_VERSION);
		return EX_OK;
	}
	if (x->o.mode == SM_MODE_NEWALIASES)
		return EX_OK;		/* aliases are read when a message is queued */
	/* a submitter must not change where or how mail is relayed */
	if (x->o.config != NULL && (getuid() != 0 || geteuid() != 0)) {
		fprintf(stderr, "%s: -C: only root may name another configuration file\n", SM_PROG);
		return EX_USAGE;
	}
	return -1;
}

int
sm_cli_open(struct sm_cli *x)
{
	int rc;

#ifdef SM_TESTING
	{
		const char *f = getenv("O365_SENDMAIL_FAULT");
		long n;
		char *end;

		if (f != NULL && strncmp(f, "write:", 6) == 0) {
			n = strtol(f + 6, &end, 10);
			if (end != f + 6 && n > 0)
				sm_out_fault(n, strcmp(end, ":EIO") == 0 ? EIO : ENOSPC);
		}
		if (f != NULL && strncmp(f, "commit:", 7) == 0 && strlen(f) > 12)
			sm_queue_fault(strcmp(f + 12, "msg") == 0 ? SM_FAULT_AFTER_MSG :
			    strcmp(f + 12, "pair") == 0 ? SM_FAULT_AFTER_PAIR : 0,
			    strncmp(f + 7, "stop-", 5) == 0);
	}
#endif
	openlog(SM_PROG, LOG_PID, LOG_MAIL);
	x->sc.facility = LOG_MAIL;
	x->sc.to_stderr = x->o.verbose || isatty(STDERR_FILENO);
	x->sc.progname = SM_PROG;
	x->lg.fn = o365_log_syslog_sink;
	x->lg.ctx = &x->sc;
	x->lg.debug = x->o.verbose;
	if ((rc = sm_cli_load(x)) != EX_OK)
		return rc;
	x->loaded = 1;
	return EX_OK;
}

void
sm_cli_close(struct sm_cli *x)
{
	if (x->loaded)
		sm_conf_free(&x->c);
	x->loaded = 0;
	closelog();
}

int
sm_cli_is_intake(const struct sm_cli *x)
{
	switch (x->o.mode) {
	case SM_MODE_SEND:
		/* -odi only waits for root: others may not run the queue */
		return x->o.deliv != SM_DELIV_INTERACTIVE || geteuid() != 0;
	case SM_MODE_LIST:
	case SM_MODE_VERIFY:
	case SM_MODE_SMTP:
	case SM_MODE_CONTROL:
	case SM_MODE_FAILED:
		return 1;
	default:
		return 0;
	}
}

int
sm_cli_run(struct sm_cli *x)
{
	switch (x->o.mode) {
	case SM_MODE_SEND:
		return mode_send(x);
	case SM_MODE_LIST:
		return mode_list(x);
	case SM_MODE_VERIFY:
		return mode_verify(x);
	case SM_MODE_SMTP:
		return mode_smtp(x);
	case SM_MODE_CONTROL:
	case SM_MODE_FAILED:
		return mode_control(x);
	default:
		return EX_SOFTWARE;
	}
}
