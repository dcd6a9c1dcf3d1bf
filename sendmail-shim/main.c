/*
 * main.c: o365-sendmail-runner, the back end of o365-sendmail (installed in
 * libexec).  It runs every mode; o365-sendmail handles the intake modes
 * itself (cli.c) and execs this program, argv unchanged, for the rest: -q,
 * --queue-runner, -odi, --probe, --test-send, --check, --init, --oauth-login
 * and the detached runner that -odb starts.
 *
 * Built twice: o365-sendmail-runner (with xoauth_child.c: OpenSSL but no
 * libcurl or json-c; for auth.mechanism "xoauth2" each token is fetched in a
 * child that loads the token module o365-sendmail-oauth.so, SM_OAUTH_
 * MODULE_PATH), which execs o365-sendmail-runner-oauth (SM_OAUTH_RUNNER_PATH;
 * the token store of xoauth_store.c in the process), argv unchanged, for
 * --oauth-login and the certificate credential.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <syslog.h>
#include <unistd.h>

#include "o365/sasl.h"
#include "o365/secret.h"
#include "cli.h"
#include "flow.h"
#include "probe.h"
#include "relay.h"
#include "testsend.h"
#include "xoauth.h"
#ifdef SM_TESTING
#include "testclock.h"
#endif


/* ---- --init ---- */

static int
create_user(const char *name, const char *home)
{
	char *const argv[] = { "useradd", "--system", "--no-create-home", "--home-dir", (char *)home,
	    "--shell", "/usr/sbin/nologin", "--user-group", (char *)name, NULL };
	int st;
	pid_t pid;

	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		execv("/usr/sbin/useradd", argv);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) == -1)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int
mode_init(struct sm_cli *x)
{
	struct o365_error err;
	struct o365_secret *s = NULL;
	struct passwd *pw;
	const char *dir = x->o.init_dir != NULL ? x->o.init_dir : x->c.queue_dir;
	int rc;

	if ((rc = sm_cli_need_root("--init")) != EX_OK)
		return rc;
	o365_error_clear(&err);
	if (!x->have_quser) {
		if (create_user(x->c.queue_user, dir) != 0 || (pw = getpwnam(x->c.queue_user)) == NULL) {
			sm_cli_die("cannot create the queue user %s with useradd", x->c.queue_user);
			return EX_OSERR;
		}
		x->quid = pw->pw_uid;
		x->qgid = pw->pw_gid;
		x->have_quser = 1;
		printf("created system user %s (uid %u)\n", x->c.queue_user, (unsigned)x->quid);
	}
	if (x->quid == 0) {
		sm_cli_die("queue.user %s must not be root", x->c.queue_user);
		return EX_CONFIG;
	}
	if (sm_queue_init(dir, x->quid, x->qgid, &err) != O365_OK) {
		sm_cli_die("%s", err.why);
		return sm_cli_exit(err.code);
	}
	if (sm_xoauth_init_state(dir, x->quid, x->qgid, &err) != O365_OK) {
		sm_cli_die("%s", err.why);
		return sm_cli_exit(err.code);
	}
	printf("queue %s ready (incoming/ 1733, queue/ failed/ state/ 0700, owner %s)\n", dir,
	    x->c.queue_user);
	/* what relaying will need: warnings, the tree is fine without them */
	if (sm_conf_check_relay(&x->c, &err) != O365_OK)
		printf("warning: %s\n", err.why);
	else if (sm_xoauth_enabled(&x->c))
		;	/* --check tells about the OAuth2 files */
	else if (o365_secret_read_file(x->c.auth_password_file, 0, &s, &err) != O365_OK)
		printf("warning: %s\n", err.why);
	o365_secret_free(&s);
	return EX_OK;
}

/* The OAuth2 identity and its token status to fp (root, queue user known). */
static int
oauth_status(struct sm_cli *x, FILE *fp)
{
	struct o365_error err;
	struct o365_tls_opts tls;
	struct sm_xoauth xo;
	int r;

	o365_error_clear(&err);
	if ((r = sm_xoauth_tls(&x->c, &tls, &err)) == O365_OK &&
	    (r = sm_xoauth_init(&xo, &x->c, &tls, x->quid, 1, &err)) == O365_OK) {
		r = sm_xoauth_print_status(&xo, fp, &err);
		sm_xoauth_free(&xo);
	}
	if (r != O365_OK)
		sm_cli_die("%s", err.why);
	return r;
}

static int
mode_oauth_login(struct sm_cli *x)
{
	struct o365_error err;
	struct o365_oauth_error oerr;
	struct o365_tls_opts tls;
	struct sm_xoauth xo;
	int rc, r;

	if ((rc = sm_cli_need_root("--oauth-login")) != EX_OK || (rc = sm_cli_need_quser(x)) != EX_OK)
		return rc;
	o365_error_clear(&err);
	if (!sm_xoauth_enabled(&x->c) || x->c.oauth_refresh_token_file == NULL) {
		sm_cli_die("--oauth-login needs auth.mechanism \"xoauth2\" and oauth.refresh_token_file");
		return EX_CONFIG;
	}
	if ((r = sm_conf_check_relay(&x->c, &err)) != O365_OK ||
	    (r = sm_xoauth_tls(&x->c, &tls, &err)) != O365_OK ||
	    (r = sm_xoauth_init(&xo, &x->c, &tls, x->quid, 1, &err)) != O365_OK) {
		sm_cli_die("%s", err.why);
		return EX_CONFIG;
	}
	printf("signing in %s (tenant %s, app %s) with the device code flow\n", x->c.auth_user,
	    x->c.oauth_tenant, x->c.oauth_client_id);
	fflush(stdout);
	r = sm_xoauth_login(&xo, x->qgid, stdout, &x->lg, &oerr, &err);
	sm_xoauth_free(&xo);
	if (r != O365_OK) {
		sm_cli_die("--oauth-login: %s", err.why);
		return r == O365_E_CONFIG ? EX_CONFIG : r == O365_E_AUTH ? EX_NOPERM : EX_TEMPFAIL;
	}
	return EX_OK;
}

/* --check: what the key table cannot see.  Prints every problem; returns
 * EX_CONFIG when one is fatal.  Limits above Exchange Online's only warn. */
static int
check_files(struct sm_cli *x)
{
	const char *path = x->o.config != NULL ? x->o.config : SM_CONF_PATH;
	struct stat st;
	int rc = EX_OK;

	if (stat(path, &st) == 0) {
		if (st.st_uid != 0) {
			sm_cli_die("%s: owned by uid %u, must be owned by root", path, (unsigned)st.st_uid);
			rc = EX_CONFIG;
		}
		if (st.st_mode & 022) {
			sm_cli_die("%s: mode %04o is writable by %s: chmod 644 %s", path,
			    (unsigned)(st.st_mode & 07777), (st.st_mode & 002) ? "everyone" : "its group",
			    path);
			rc = EX_CONFIG;
		}
	}
	if (x->c.queue_dir != NULL && stat(x->c.queue_dir, &st) == -1) {
		sm_cli_die("queue.dir %s: %s (run %s --init)", x->c.queue_dir, strerror(errno), SM_PROG);
		rc = EX_CONFIG;
	}
	if (x->c.flow_connections > SM_FLOW_CONNECTIONS)
		sm_cli_die("warning: flow.connections %d is above Exchange Online's %d (432 4.3.2 replies)",
		    x->c.flow_connections, SM_FLOW_CONNECTIONS);
	if (x->c.flow_per_minute > SM_FLOW_PER_MINUTE)
		sm_cli_die("warning: flow.per_minute %d is above Exchange Online's %d", x->c.flow_per_minute,
		    SM_FLOW_PER_MINUTE);
	if (x->c.flow_day_recipients > SM_FLOW_DAY_RECIPIENTS)
		sm_cli_die("warning: flow.day_recipients %d is above Exchange Online's %d",
		    x->c.flow_day_recipients, SM_FLOW_DAY_RECIPIENTS);
	return rc;
}

static int
mode_check(struct sm_cli *x)
{
	struct o365_error err;
	struct o365_secret *s = NULL;
	int rc;

	if ((rc = sm_cli_need_root("--check")) != EX_OK)
		return rc;
	if ((rc = check_files(x)) != EX_OK)
		return rc;
	o365_error_clear(&err);
	if (sm_xoauth_enabled(&x->c)) {
		if (sm_conf_check_relay(&x->c, &err) != O365_OK) {
			sm_cli_die("%s", err.why);
			return EX_CONFIG;
		}
		if ((rc = sm_cli_need_quser(x)) != EX_OK)
			return rc;
		if (oauth_status(x, stdout) != O365_OK)
			return EX_CONFIG;
		printf("config ok: relay %s:%d as %s (xoauth2), queue %s\n", x->c.smtp_host,
		    x->c.smtp_port, x->c.auth_user, x->c.queue_dir);
		return EX_OK;
	}
	if (sm_conf_check_relay(&x->c, &err) != O365_OK ||
	    o365_secret_read_file(x->c.auth_password_file, 0, &s, &err) != O365_OK ||
	    o365_credential_check(s->data, s->len, "password", &err) != O365_OK) {
		o365_secret_free(&s);
		sm_cli_die("%s", err.why);
		return EX_CONFIG;
	}
	o365_secret_free(&s);
	if ((rc = sm_cli_need_quser(x)) != EX_OK)
		return rc;
	printf("config ok: relay %s:%d as %s, queue %s\n", x->c.smtp_host, x->c.smtp_port,
	    x->c.auth_user, x->c.queue_dir);
	return EX_OK;
}

/* ---- submission ---- */

static int
run_now(struct sm_cli *x, const char *only_id, int force, int quiet)
{
	struct o365_error err;
	struct sm_queue q;
	struct sm_run run;
	int r;

	o365_error_clear(&err);
	if (sm_queue_open(&q, x->c.queue_dir, x->quid, x->qgid, &err) != O365_OK) {
		sm_cli_die("%s", err.why);
		return sm_cli_exit(err.code);
	}
	memset(&run, 0, sizeof(run));
	run.conf = &x->c;
	run.q = &q;
	run.policy = &x->pol;
	run.lg = &x->lg;
	run.force = force;
	run.only_id = only_id;
	run.background = x->o.background;
#ifdef SM_TESTING
	run.clock = sm_test_clock();
#endif
	r = sm_run_queue(&run, &err);
	sm_queue_close(&q);
	if (r != O365_OK && run.held) {
		/* the alert (LOG_ALERT) said what to fix: one line, not two */
		if (!quiet)
			sm_cli_die("queue held: messages stay queued; see the alert in the mail log");
		return EX_TEMPFAIL;
	}
	if (r != O365_OK) {
		if (!quiet)
			sm_cli_die("queue run: %s", err.why);
		return EX_TEMPFAIL;
	}
	if (only_id != NULL && !quiet && run.last_status[0] != '\0')
		fprintf(stderr, "%s: %s: %s\n", SM_PROG, only_id, run.last_status);
	return EX_OK;
}

/* --probe: what the runner would see, without sending mail. */
static int
mode_probe(struct sm_cli *x)
{
	struct o365_error err;
	struct o365_secret *s = NULL;
	struct o365_tls_opts tls;
	struct sm_probe_opts po;
	char helo[256];
	int rc, r;

	if ((rc = sm_cli_need_root("--probe")) != EX_OK)
		return rc;
	o365_error_clear(&err);
	memset(&tls, 0, sizeof(tls));
	memset(&po, 0, sizeof(po));
	if (sm_conf_check_relay(&x->c, &err) != O365_OK ||
	    o365_tls_version_parse(x->c.tls_min_version, &tls.min_version) != O365_OK ||
	    (!sm_xoauth_enabled(&x->c) &&
	    o365_secret_read_file(x->c.auth_password_file, 0, &s, &err) != O365_OK)) {
		sm_cli_die("%s", err.why[0] != '\0' ? err.why : "tls.min_version");
		return EX_CONFIG;
	}
	if (x->c.smtp_helo != NULL)
		snprintf(helo, sizeof(helo), "%s", x->c.smtp_helo);
	else if (sm_fqdn(helo, sizeof(helo)) != 0)
		snprintf(helo, sizeof(helo), "localhost");
	tls.ca_file = x->c.tls_ca_file;
	tls.ca_dir = x->c.tls_ca_dir;
	po.host = x->c.smtp_host;
	po.port = (unsigned)x->c.smtp_port;
	po.tls_mode = strcmp(x->c.smtp_tls, "implicit") == 0 ? O365_SMTP_IMPLICIT : O365_SMTP_STARTTLS;
	po.tls = &tls;
	po.helo = helo;
	po.timeout_ms = (unsigned)x->c.smtp_timeout * 1000u;
	if (s != NULL) {	/* xoauth2: connection and TLS only (no token here yet) */
		po.auth_user = x->c.auth_user;
		po.auth_mech = o365_sasl_mech_parse(x->c.auth_mechanism);
		po.secret = s->data;
		po.secretlen = s->len;
	}
	r = sm_probe(&po, stdout, &err);
	fflush(stdout);
	o365_secret_free(&s);
	if (r == O365_OK)
		return EX_OK;
	sm_cli_die("probe failed: %s", err.why);
	return r == O365_E_CONFIG ? EX_CONFIG : EX_UNAVAILABLE;
}

/* --test-send ADDR (testsend.c): the runner drops root, so it ends the program. */
static int
mode_test_send(struct sm_cli *x)
{
	struct sm_test_send ts;
	int rc;

	if ((rc = sm_cli_need_root("--test-send")) != EX_OK || (rc = sm_cli_need_quser(x)) != EX_OK)
		return rc;
	memset(&ts, 0, sizeof(ts));
	ts.conf = &x->c;
	ts.policy = &x->pol;
	ts.lg = &x->lg;
	ts.quid = x->quid;
	ts.qgid = x->qgid;
	ts.rcpt = x->o.test_rcpt;
	ts.fqdn = x->fqdn;
#ifdef SM_TESTING
	ts.clock = sm_test_clock();
#endif
	return sm_test_send(&ts, stdout);
}

static int
deliver_now(struct sm_cli *x, const char *id)
{
	return run_now(x, id, 1, 0);
}

int
main(int argc, char **argv)
{
	struct sm_cli x;
	int rc;

	if ((rc = sm_cli_parse(&x, argc, argv)) >= 0)
		return rc;
	x.deliver_now = deliver_now;
	if ((rc = sm_cli_open(&x)) != EX_OK) {
		sm_cli_close(&x);
		return rc;
	}
#ifdef SM_OAUTH_RUNNER_PATH
	/* this program fetches tokens in a child (xoauth_child.c); what needs
	 * the token store or the certificate parser here runs in the one that has */
	if (x.o.mode == SM_MODE_OAUTH_LOGIN || (sm_xoauth_enabled(&x.c) &&
	    x.c.oauth_certificate_file != NULL && x.c.oauth_certificate_file[0] != '\0')) {
		sm_cli_close(&x);
		execv(SM_OAUTH_RUNNER_PATH, argv);
		sm_cli_die("cannot run %s: %s", SM_OAUTH_RUNNER_PATH, strerror(errno));
		return EX_UNAVAILABLE;
	}
#endif
	if (sm_cli_is_intake(&x) || x.o.mode == SM_MODE_SEND) {
		rc = sm_cli_run(&x);
		sm_cli_close(&x);
		return rc;
	}
	switch (x.o.mode) {
	case SM_MODE_RUNQ:
		if ((rc = sm_cli_need_root("-q")) == EX_OK && (rc = sm_cli_need_quser(&x)) == EX_OK) {
			if (x.o.verbose && sm_xoauth_enabled(&x.c))
				(void)oauth_status(&x, stderr);
			rc = run_now(&x, NULL, x.o.force, x.o.background);
		}
		break;
	case SM_MODE_INIT:
		rc = mode_init(&x);
		break;
	case SM_MODE_CHECK:
		rc = mode_check(&x);
		break;
	case SM_MODE_PROBE:
		rc = mode_probe(&x);
		break;
	case SM_MODE_TEST_SEND:
		rc = mode_test_send(&x);
		break;
	case SM_MODE_OAUTH_LOGIN:
		rc = mode_oauth_login(&x);
		break;
	default:
		rc = EX_SOFTWARE;
		break;
	}
	sm_cli_close(&x);
	return rc;
}
