/*
 * test_pam_module.c: pam_o365.so through the real libpam.
 *
 * libpam is dlopen'ed (the unit test link line has no -lpam) and each case
 * runs pam_start_confdir() with a service file in a temporary directory and a
 * conversation that supplies the password.  The servers are fakes on
 * 127.0.0.1: fake_imap_xoauth2.py (Exchange Online, on-prem LOGIN mode, a
 * server that never answers, an untrusted certificate), fake_token.py
 * (Entra ID token endpoint, every AADSTS case) and fakeserver.py (the
 * hostile scenarios of tests/fake/scenarios).
 *
 * Logs: this executable defines syslog() and friends, so pam_syslog's lines
 * (libpam calls them through the PLT) land in a buffer here; at the end every
 * password used and every token the fake endpoint issued is searched for in
 * that buffer, in the conversation's messages, and in what the PAM calls
 * wrote to stdout/stderr (which must be nothing).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <security/pam_appl.h>

#include "spawn.h"

/* ---- syslog capture ---- */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char logbuf[1 << 20];
static size_t loglen;

static void cap_vlog(int prio, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void
cap_vlog(int prio, const char *fmt, va_list ap)
{
	char line[4096];
	int n;

	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	pthread_mutex_lock(&log_mu);
	n = snprintf(logbuf + loglen, sizeof(logbuf) - loglen, "<%d>%s\n", prio, line);
	if (n > 0 && (size_t)n < sizeof(logbuf) - loglen)
		loglen += (size_t)n;
	pthread_mutex_unlock(&log_mu);
}

void syslog(int prio, const char *fmt, ...);
void vsyslog(int prio, const char *fmt, va_list ap);
void __syslog_chk(int prio, int flag, const char *fmt, ...);
void __vsyslog_chk(int prio, int flag, const char *fmt, va_list ap);
void openlog(const char *ident, int option, int facility);

void
syslog(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cap_vlog(prio, fmt, ap);
	va_end(ap);
}

void
vsyslog(int prio, const char *fmt, va_list ap)
{
	cap_vlog(prio, fmt, ap);
}

/* glibc's fortified entry points; declared here with their format checks */
void	__syslog_chk(int prio, int flag, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void	__vsyslog_chk(int prio, int flag, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

void
__syslog_chk(int prio, int flag, const char *fmt, ...)
{
	va_list ap;

	(void)flag;
	va_start(ap, fmt);
	cap_vlog(prio, fmt, ap);
	va_end(ap);
}

void
__vsyslog_chk(int prio, int flag, const char *fmt, va_list ap)
{
	(void)flag;
	cap_vlog(prio, fmt, ap);
}

static int openlog_calls;

void
openlog(const char *ident, int option, int facility)
{
	(void)ident;
	(void)option;
	(void)facility;
	openlog_calls++;	/* the module must never call it */
}

/* ---- libpam through dlopen ---- */

static struct {
	void	*h;
	int	(*start_confdir)(const char *, const char *, const struct pam_conv *,
		    const char *, pam_handle_t **);
	int	(*authenticate)(pam_handle_t *, int);
	int	(*setcred)(pam_handle_t *, int);
	int	(*acct_mgmt)(pam_handle_t *, int);
	int	(*end)(pam_handle_t *, int);
} pam;

/* ---- the run's fixtures ---- */

static struct {
	char	dir[512];
	char	pki[600];
	char	state[600];		/* fake_token.py's state dir */
	char	module[600];
	int	have_token_fake;
	struct o365_proc exo;		/* Exchange Online: tokens.json */
	struct o365_proc exo_empty;	/* Exchange Online: no token is valid */
	struct o365_proc onprem;	/* LOGIN accepted for logins.json */
	struct o365_proc stall;		/* never answers */
	struct o365_proc untrusted;	/* certificate from another CA */
	struct o365_proc token;		/* fake_token.py */
	char	exo_tr[600], onprem_tr[600];
	struct sigaction sig[NSIG];	/* the handlers before any test */
} fx;

/* every password used, to search the logs for at the end */
static const char *const passwords[] = {
	"Corr3ct horse \"battery\" \\staple {42}",
	"wrong-password-marker-7731",
	"\xc3\xa9t\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x94\x91-utf8-pass",
	"entra-secret-marker-5512",
	"bad\rpass-marker-0951",
};
#define PW_GOOD		passwords[0]
#define PW_WRONG	passwords[1]
#define PW_UTF8		passwords[2]
#define PW_ENTRA	passwords[3]
#define PW_CR		passwords[4]
static char pw_long[501];

struct conv_state {
	const char	*password;	/* NULL: the conversation fails */
	int		 prompts;
	char		 msgs[2048];	/* PAM_ERROR_MSG / PAM_TEXT_INFO, appended */
};

static int
conv_fn(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
	struct conv_state *cs = data;
	struct pam_response *r;
	int i;

	if ((r = calloc((size_t)n, sizeof(*r))) == NULL)
		return PAM_BUF_ERR;
	for (i = 0; i < n; i++) {
		switch (msg[i]->msg_style) {
		case PAM_PROMPT_ECHO_OFF:
			cs->prompts++;
			if (cs->password == NULL || strcmp(msg[i]->msg, "Password: ") != 0) {
				free(r);
				return PAM_CONV_ERR;
			}
			r[i].resp = strdup(cs->password);
			break;
		case PAM_ERROR_MSG:
		case PAM_TEXT_INFO: {
			size_t l = strlen(cs->msgs);

			(void)snprintf(cs->msgs + l, sizeof(cs->msgs) - l, "%s\n", msg[i]->msg);
			break;
		}
		default:
			free(r);
			return PAM_CONV_ERR;
		}
	}
	*resp = r;
	return PAM_SUCCESS;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static void
copy_file(const char *from, const char *to)
{
	char buf[65536];
	size_t n;
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");

	assert_non_null(in);
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	assert_int_equal(ferror(in), 0);
	fclose(in);
	assert_int_equal(fclose(out), 0);
}

static size_t
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

static int
file_contains(const char *path, const char *needle)
{
	static char buf[1 << 20];
	size_t n;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

/*
 * Write a config for method: auth_extra goes inside the auth group,
 * client_id NULL means the public client fake_token.py knows, extra is
 * appended (other groups).
 */
static const char *
write_conf_full(const char *name, const char *method, const char *auth_extra,
    const char *client_id, int port, int timeout, const char *extra)
{
	static char path[700];
	char text[4096];
	int n;

	n = snprintf(path, sizeof(path), "%s/%s.conf", fx.dir, name);
	assert_true(n > 0 && (size_t)n < sizeof(path));
	n = snprintf(text, sizeof(text),
	    "auth = { method = \"%s\"; %s };\n"
	    "imap = { host = \"localhost\"; port = %d; timeout = %d; };\n"
	    "tls = { ca_file = \"%s/ca.pem\"; };\n"
	    "oauth = { authority = \"https://localhost:%d\"; tenant = \"contoso.onmicrosoft.com\";\n"
	    "          client_id = \"%s\"; };\n"
	    "%s\n",
	    method, auth_extra != NULL ? auth_extra : "", port, timeout, fx.pki, fx.token.port,
	    client_id != NULL ? client_id : "11111111-2222-3333-4444-555555555555",
	    extra != NULL ? extra : "");
	assert_true(n > 0 && (size_t)n < sizeof(text));
	write_file(path, text);
	return path;
}

static const char *
write_conf(const char *name, const char *method, int port, int timeout, const char *extra)
{
	return write_conf_full(name, method, NULL, NULL, port, timeout, extra);
}

struct run {
	int	lines;		/* attempt lines ("result=") logged by the run */
	int	auth;
	int	setcred;
	int	acct;
	long	ms;
	struct conv_state cs;
};

/*
 * Run pam_authenticate (then pam_setcred and pam_acct_mgmt) for user with
 * the service "auth <stack>" / "account <stack>" lines given.  stdout and
 * stderr are redirected during the calls; they must stay empty.
 */
static void
run_pam(const char *service, const char *user, const char *password, struct run *out)
{
	char confdir[700], path[800], quiet[700];
	struct pam_conv conv = { conv_fn, NULL };
	pam_handle_t *ph = NULL;
	struct timespec t0, t1;
	int so, se, fd;

	size_t mark = loglen;
	const char *p;

	memset(out, 0, sizeof(*out));
	out->cs.password = password;
	conv.appdata_ptr = &out->cs;
	(void)snprintf(confdir, sizeof(confdir), "%s/pam.d", fx.dir);
	(void)mkdir(confdir, 0755);
	(void)snprintf(path, sizeof(path), "%s/o365-test", confdir);
	write_file(path, service);

	(void)snprintf(quiet, sizeof(quiet), "%s/stdio.out", fx.dir);
	fflush(stdout);
	fflush(stderr);
	so = dup(1);
	se = dup(2);
	fd = open(quiet, O_WRONLY | O_CREAT | O_APPEND, 0600);
	assert_true(so >= 0 && se >= 0 && fd >= 0);
	dup2(fd, 1);
	dup2(fd, 2);
	close(fd);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	out->auth = pam.start_confdir("o365-test", user, &conv, confdir, &ph);
	if (out->auth == PAM_SUCCESS) {
		out->auth = pam.authenticate(ph, 0);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		out->setcred = pam.setcred(ph, PAM_ESTABLISH_CRED);
		out->acct = pam.acct_mgmt(ph, 0);
		pam.end(ph, out->auth);
	} else {
		clock_gettime(CLOCK_MONOTONIC, &t1);
	}
	out->ms = (t1.tv_sec - t0.tv_sec) * 1000L + (t1.tv_nsec - t0.tv_nsec) / 1000000L;
	for (p = logbuf + mark; (p = strstr(p, " result=")) != NULL; p++)
		out->lines++;

	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	close(so);
	close(se);
}

/*
 * "auth required MODULE config=CONF debug ARGS\naccount ...": debug, so the
 * protocol traces are in the log the last test searches for secrets.
 */
static const char *
service(const char *conf, const char *args)
{
	static char text[8192];

	(void)snprintf(text, sizeof(text),
	    "auth required %s config=%s debug %s\naccount required %s config=%s\n",
	    fx.module, conf, args != NULL ? args : "", fx.module, conf);
	return text;
}

/* ---- setup ---- */

static int
start_fake(struct o365_proc *p, const char *cert, const char *tokens, const char *extra,
    const char *extra2, const char *transcript)
{
	char script[700], certarg[700];
	char *argv[16];
	int i = 0;

	(void)snprintf(script, sizeof(script), "%s/tests/fake/fake_imap_xoauth2.py",
	    O365_SOURCE_DIR);
	(void)snprintf(certarg, sizeof(certarg), "%s/%s", fx.pki, cert);
	argv[i++] = "/usr/bin/python3";
	argv[i++] = script;
	argv[i++] = "--cert";
	argv[i++] = certarg;
	argv[i++] = "--tokens";
	argv[i++] = (char *)tokens;
	argv[i++] = "--lifetime";
	argv[i++] = "300";
	if (transcript != NULL) {
		argv[i++] = "--transcript";
		argv[i++] = (char *)transcript;
	}
	if (extra != NULL)
		argv[i++] = (char *)extra;
	if (extra2 != NULL)
		argv[i++] = (char *)extra2;
	argv[i] = NULL;
	return o365_proc_start(p, argv, 1, 10000);
}

static int
setup(void **state)
{
	char script[700], tokens[700], empty[700], logins[700], certarg[700];
	char *mk[4];
	struct o365_proc p;
	int status, i;

	(void)state;
	memset(&fx, 0, sizeof(fx));
	(void)snprintf(fx.module, sizeof(fx.module), "%s/pam_o365/pam_o365.so", O365_BINARY_DIR);
	if (access(fx.module, R_OK) != 0)
		return -1;	/* pam_o365/ builds it with every build */
	if ((pam.h = dlopen("libpam.so.0", RTLD_NOW | RTLD_GLOBAL)) == NULL)
		return -1;
	pam.start_confdir = (int (*)(const char *, const char *, const struct pam_conv *,
	    const char *, pam_handle_t **))dlsym(pam.h, "pam_start_confdir");
	pam.authenticate = (int (*)(pam_handle_t *, int))dlsym(pam.h, "pam_authenticate");
	pam.setcred = (int (*)(pam_handle_t *, int))dlsym(pam.h, "pam_setcred");
	pam.acct_mgmt = (int (*)(pam_handle_t *, int))dlsym(pam.h, "pam_acct_mgmt");
	pam.end = (int (*)(pam_handle_t *, int))dlsym(pam.h, "pam_end");
	if (pam.start_confdir == NULL || pam.authenticate == NULL || pam.end == NULL)
		return -1;

	memset(pw_long, 'x', 500);
	for (i = 0; i < 500; i += 50)
		pw_long[i] = (char)('A' + i / 50);
	pw_long[500] = '\0';

	for (i = 1; i < NSIG; i++)
		(void)sigaction(i, NULL, &fx.sig[i]);
	if (o365_test_tmpdir(fx.dir, sizeof(fx.dir)) != 0)
		return -1;
	(void)snprintf(fx.pki, sizeof(fx.pki), "%s/pki", fx.dir);
	(void)snprintf(fx.state, sizeof(fx.state), "%s/state", fx.dir);
	if (mkdir(fx.state, 0700) != 0)
		return -1;
	(void)snprintf(script, sizeof(script), "%s/tests/fake/mkcerts.sh", O365_SOURCE_DIR);
	mk[0] = "/bin/bash";
	mk[1] = script;
	mk[2] = fx.pki;
	mk[3] = NULL;
	if (o365_proc_start(&p, mk, 0, 0) != 0 || o365_proc_wait(&p, 60000, &status) != 0 ||
	    status != 0)
		return -1;

	(void)snprintf(tokens, sizeof(tokens), "%s/tokens.json", fx.state);
	(void)snprintf(empty, sizeof(empty), "%s/no-tokens.json", fx.dir);
	(void)snprintf(logins, sizeof(logins), "%s/logins.json", fx.dir);
	write_file(empty, "{}\n");
	{
		char text[2048];

		(void)snprintf(text, sizeof(text),
		    "{\"bob\": \"Corr3ct horse \\\"battery\\\" \\\\staple {42}\",\n"
		    " \"carol@contoso.com\": \"\xc3\xa9t\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x94\x91-utf8-pass\",\n"
		    " \"dave\": \"%s\"}\n", pw_long);
		write_file(logins, text);
	}
	(void)snprintf(fx.exo_tr, sizeof(fx.exo_tr), "%s/exo.transcript", fx.dir);
	(void)snprintf(fx.onprem_tr, sizeof(fx.onprem_tr), "%s/onprem.transcript", fx.dir);
	if (start_fake(&fx.exo, "server", tokens, NULL, NULL, fx.exo_tr) != 0 ||
	    start_fake(&fx.exo_empty, "server", empty, NULL, NULL, NULL) != 0 ||
	    start_fake(&fx.onprem, "server", empty, "--logins", logins, fx.onprem_tr) != 0 ||
	    start_fake(&fx.stall, "server", empty, "--stall", NULL, NULL) != 0 ||
	    start_fake(&fx.untrusted, "untrusted", empty, NULL, NULL, NULL) != 0)
		return -1;

	(void)snprintf(script, sizeof(script), "%s/tests/fake/fake_token.py", O365_SOURCE_DIR);
	{
		char *argv[] = { "/usr/bin/python3", script, "--cert", certarg, "--state",
			fx.state, "--lifetime", "300", NULL };

		(void)snprintf(certarg, sizeof(certarg), "%s/server", fx.pki);
		if (o365_proc_start(&fx.token, argv, 1, 10000) != 0)
			return -1;
		fx.have_token_fake = 1;
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (getenv("O365_PAM_LOG_DUMP") != NULL) {	/* for a human: the whole log */
		FILE *f = fopen(getenv("O365_PAM_LOG_DUMP"), "w");

		if (f != NULL) {
			fwrite(logbuf, 1, loglen, f);
			fclose(f);
		}
	}
	o365_proc_stop(&fx.exo, 2000);
	o365_proc_stop(&fx.exo_empty, 2000);
	o365_proc_stop(&fx.onprem, 2000);
	o365_proc_stop(&fx.stall, 2000);
	o365_proc_stop(&fx.untrusted, 2000);
	if (fx.have_token_fake)
		o365_proc_stop(&fx.token, 2000);
	if (fx.dir[0] != '\0')
		o365_test_rmtree(fx.dir);
	if (pam.h != NULL)
		dlclose(pam.h);
	return 0;
}

/* setup fails without them; these only guard against a half-run setup */
#define NEED_MODULE() assert_non_null(pam.h)
#define NEED_TOKEN() do { assert_non_null(pam.h); assert_true(fx.have_token_fake); } while (0)

static size_t
count_connects(const char *transcript)
{
	static char buf[1 << 20];
	size_t n, c = 0;
	const char *p;
	FILE *f = fopen(transcript, "r");

	if (f == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	for (p = buf; (p = strstr(p, "CONNECT\n")) != NULL; p++)
		c++;
	return c;
}

/* The syslog priority of the last captured pam_o365 attempt line holding needle, or -1. */
static int
line_prio(const char *needle)
{
	const char *p = logbuf, *hit = NULL, *start;

	while ((p = strstr(p, needle)) != NULL) {
		for (start = p; start > logbuf && start[-1] != '\n'; start--)
			;
		if (strstr(start, "result=") != NULL && strstr(start, "result=") < strchr(p, '\n'))
			hit = start;
		p++;
	}
	return hit != NULL && *hit == '<' ? (int)strtol(hit + 1, NULL, 10) : -1;
}

/* ---- imap-login ---- */

static void
imap_login_accepted(void **state)
{
	const char *conf = write_conf("onprem", "imap-login", fx.onprem.port, 10, NULL);
	struct run r;

	(void)state;
	NEED_MODULE();
	run_pam(service(conf, NULL), "bob", PW_GOOD, &r);
	assert_int_equal(r.auth, PAM_SUCCESS);
	assert_int_equal(r.cs.prompts, 1);
	assert_int_equal(r.lines, 1);		/* one line per attempt */
	assert_int_equal(r.setcred, PAM_SUCCESS);
	assert_int_equal(r.acct, PAM_SUCCESS);
	assert_true(file_contains(fx.onprem_tr, "LOGIN user=bob ok"));
	assert_non_null(strstr(logbuf, "user=bob login=bob method=imap-login"));
	assert_non_null(strstr(logbuf, "result=success"));
}

static void
imap_login_utf8_and_long_passwords(void **state)
{
	const char *conf = write_conf("onprem-map", "imap-login", fx.onprem.port, 10,
	    "user = { map = \"%u@Contoso.COM\"; lowercase = true; };");
	const char *plain;
	size_t mark;
	struct run r;

	(void)state;
	NEED_MODULE();
	mark = loglen;
	run_pam(service(conf, NULL), "Carol", PW_UTF8, &r);	/* mapped, folded */
	if (r.auth != PAM_SUCCESS)
		fail_msg("got %d: %s", r.auth, logbuf + mark);
	plain = write_conf("onprem", "imap-login", fx.onprem.port, 10, NULL);
	run_pam(service(plain, NULL), "dave", pw_long, &r);	/* 500 characters */
	assert_int_equal(r.auth, PAM_SUCCESS);
	run_pam(service(plain, NULL), "dave", PW_GOOD, &r);
	assert_int_equal(r.auth, PAM_AUTH_ERR);
}

static void
imap_login_wrong_password(void **state)
{
	const char *conf = write_conf("onprem", "imap-login", fx.onprem.port, 10, NULL);
	struct run r;

	(void)state;
	NEED_MODULE();
	run_pam(service(conf, NULL), "bob", PW_WRONG, &r);
	assert_int_equal(r.auth, PAM_AUTH_ERR);
	assert_int_not_equal(r.setcred, PAM_SUCCESS);	/* not ours to vouch for */
	assert_non_null(strstr(logbuf, "result=auth_err"));
}

static void
imap_login_against_exchange_online(void **state)
{
	const char *conf = write_conf("exo-login", "imap-login", fx.exo.port, 10, NULL);
	struct run r;

	(void)state;
	NEED_MODULE();
	/* Exchange Online says NO LOGIN failed. to every password */
	run_pam(service(conf, NULL), "alice@contoso.com", PW_ENTRA, &r);
	assert_int_equal(r.auth, PAM_AUTH_ERR);
	assert_non_null(strstr(logbuf, "LOGIN failed."));
}

/* ---- refused before anything is sent ---- */

static void
bad_credentials_send_nothing(void **state)
{
	const char *conf = write_conf("exo-login2", "imap-login", fx.exo.port, 10, NULL);
	size_t before;
	struct run r;

	(void)state;
	NEED_MODULE();
	before = count_connects(fx.exo_tr);
	run_pam(service(conf, NULL), "alice\r\nA1 LOGOUT", PW_GOOD, &r);	/* CRLF injection */
	assert_int_equal(r.auth, PAM_AUTH_ERR);
	assert_int_equal(r.cs.prompts, 0);
	run_pam(service(conf, NULL), "alice\nx", PW_GOOD, &r);
	assert_int_equal(r.auth, PAM_AUTH_ERR);
	run_pam(service(conf, NULL), "alice", "", &r);			/* empty password */
	assert_int_equal(r.auth, PAM_AUTH_ERR);
	run_pam(service(conf, NULL), "alice", PW_CR, &r);			/* CR in password */
	assert_int_equal(r.auth, PAM_AUTH_ERR);
	run_pam(service(conf, NULL), "alice", "x\ny", &r);			/* LF in password */
	assert_int_equal(r.auth, PAM_AUTH_ERR);
	assert_int_equal(count_connects(fx.exo_tr), before);	/* not one connection */
	assert_null(strstr(logbuf, "A1 LOGOUT"));		/* escaped in the log */
}

/* ---- could not check ---- */

static void
never_answering_server_times_out(void **state)
{
	const char *conf = write_conf("stall", "imap-login", fx.stall.port, 2, NULL);
	struct run r;

	(void)state;
	NEED_MODULE();
	run_pam(service(conf, NULL), "bob", PW_GOOD, &r);
	assert_int_equal(r.auth, PAM_AUTHINFO_UNAVAIL);
	assert_true(r.ms >= 1500);		/* it did wait for the server */
	assert_true(r.ms < 2000 + 5000);	/* and gave up at imap.timeout (generous bound) */
}

static void
untrusted_certificate(void **state)
{
	const char *conf = write_conf("untrusted", "imap-login", fx.untrusted.port, 10, NULL);
	struct run r;

	(void)state;
	NEED_MODULE();
	run_pam(service(conf, NULL), "bob", PW_GOOD, &r);
	assert_int_equal(r.auth, PAM_AUTHINFO_UNAVAIL);
	assert_int_not_equal(r.setcred, PAM_SUCCESS);
}

static void
connection_refused(void **state)
{
	struct o365_proc p;
	const char *conf;
	char *argv[] = { "/usr/bin/python3", "-c",
		"import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); "
		"print('PORT', s.getsockname()[1], flush=True)", NULL };
	int port, status;
	struct run r;

	(void)state;
	NEED_MODULE();
	/* a port that was free a moment ago and has no listener */
	assert_int_equal(o365_proc_start(&p, argv, 1, 10000), 0);
	port = p.port;
	assert_int_equal(o365_proc_wait(&p, 10000, &status), 0);
	conf = write_conf("refused", "imap-login", port, 5, NULL);
	run_pam(service(conf, NULL), "bob", PW_GOOD, &r);
	assert_int_equal(r.auth, PAM_AUTHINFO_UNAVAIL);
}

static void
missing_config(void **state)
{
	char conf[700];
	struct run r;

	(void)state;
	NEED_MODULE();
	(void)snprintf(conf, sizeof(conf), "%s/does-not-exist.conf", fx.dir);
	run_pam(service(conf, NULL), "bob", PW_GOOD, &r);
	assert_int_equal(r.auth, PAM_AUTHINFO_UNAVAIL);
	assert_int_equal(r.cs.prompts, 0);
	assert_non_null(strstr(logbuf, "unusable configuration"));
}

/* ---- scope, arguments, PAM_AUTHTOK ---- */

static void
out_of_scope_is_ignored(void **state)
{
	const char *conf = write_conf("scope", "imap-login", fx.onprem.port, 10,
	    "scope = { deny_users = [ \"bob\" ]; };");
	struct run r;

	(void)state;
	NEED_MODULE();
	run_pam(service(conf, NULL), "root", PW_GOOD, &r);
	assert_int_not_equal(r.auth, PAM_SUCCESS);	/* PAM_IGNORE alone: the stack fails */
	assert_int_equal(r.lines, 0);			/* not an attempt */
	assert_int_equal(r.cs.prompts, 0);	/* pam_unix may ask instead */
	assert_int_not_equal(r.acct, PAM_SUCCESS);
	run_pam(service(conf, NULL), "bob", PW_GOOD, &r);
	assert_int_not_equal(r.auth, PAM_SUCCESS);
	assert_int_equal(r.cs.prompts, 0);
}

static void
out_of_scope_falls_through(void **state)
{
	const char *conf = write_conf("scope2", "imap-login", fx.onprem.port, 10, NULL);
	char text[8192];
	struct run r;

	(void)state;
	NEED_MODULE();
	/* PAM_IGNORE from us: pam_permit alone decides */
	(void)snprintf(text, sizeof(text),
	    "auth required %s config=%s\nauth required pam_permit.so\n"
	    "account required %s config=%s\naccount required pam_permit.so\n",
	    fx.module, conf, fx.module, conf);
	run_pam(text, "root", PW_GOOD, &r);
	assert_int_equal(r.auth, PAM_SUCCESS);
	assert_int_equal(r.acct, PAM_SUCCESS);
	assert_int_equal(r.cs.prompts, 0);
}

static void
setcred_only_after_our_success(void **state)
{
	const char *conf = write_conf("onprem", "imap-login", fx.onprem.port, 10, NULL);
	struct conv_state cs;
	struct pam_conv conv = { conv_fn, &cs };
	char confdir[700], path[800];
	pam_handle_t *ph = NULL;

	(void)state;
	NEED_MODULE();
	(void)snprintf(confdir, sizeof(confdir), "%s/pam.d", fx.dir);
	(void)mkdir(confdir, 0755);
	(void)snprintf(path, sizeof(path), "%s/o365-test", confdir);
	write_file(path, service(conf, NULL));
	memset(&cs, 0, sizeof(cs));
	cs.password = PW_GOOD;
	assert_int_equal(pam.start_confdir("o365-test", "bob", &conv, confdir, &ph), PAM_SUCCESS);
	assert_int_equal(pam.setcred(ph, PAM_ESTABLISH_CRED) == PAM_SUCCESS, 0);	/* not yet */
	assert_int_equal(pam.authenticate(ph, 0), PAM_SUCCESS);
	assert_int_equal(pam.setcred(ph, PAM_ESTABLISH_CRED), PAM_SUCCESS);
	/* the same handle again, now with a wrong password: the success is gone */
	cs.password = PW_WRONG;
	assert_int_equal(pam.authenticate(ph, 0), PAM_AUTH_ERR);
	assert_int_not_equal(pam.setcred(ph, PAM_ESTABLISH_CRED), PAM_SUCCESS);
	pam.end(ph, PAM_SUCCESS);
}

static void
use_first_pass_without_password(void **state)
{
	const char *conf = write_conf("onprem", "imap-login", fx.onprem.port, 10, NULL);
	size_t before = count_connects(fx.onprem_tr);
	struct run r;

	(void)state;
	NEED_MODULE();
	run_pam(service(conf, "use_first_pass"), "bob", PW_GOOD, &r);
	assert_int_equal(r.auth, PAM_AUTH_ERR);
	assert_int_equal(r.cs.prompts, 0);
	assert_int_equal(count_connects(fx.onprem_tr), before);
}

static void
password_handed_on(void **state)
{
	const char *conf = write_conf("onprem", "imap-login", fx.onprem.port, 10, NULL);
	char text[8192];
	struct run r;

	(void)state;
	NEED_MODULE();
	(void)snprintf(text, sizeof(text),
	    "auth required %s config=%s debug bogus_option\n"
	    "auth required %s config=%s use_first_pass\n"
	    "auth required %s config=%s try_first_pass\n"
	    "auth required %s config=%s use_authtok\n",
	    fx.module, conf, fx.module, conf, fx.module, conf, fx.module, conf);
	run_pam(text, "bob", PW_GOOD, &r);
	assert_int_equal(r.auth, PAM_SUCCESS);
	assert_int_equal(r.cs.prompts, 1);	/* asked once, then PAM_AUTHTOK */
	assert_int_equal(r.lines, 4);		/* four attempts, four lines */
	assert_non_null(strstr(logbuf, "unknown option: bogus_option"));
}

/* ---- entra-ropc ---- */

static void
write_users(const char *mode)
{
	char path[700], text[4096];

	(void)snprintf(path, sizeof(path), "%s/users.json", fx.state);
	(void)snprintf(text, sizeof(text),
	    "{\"users\": {\n"
	    "  \"alice@contoso.com\": {\"password\": \"%s\", \"case\": \"ok\"},\n"
	    "  \"nomail@contoso.com\": {\"password\": \"%s\", \"case\": \"ok\"},\n"
	    "  \"nopw@contoso.com\": {\"password\": \"x\", \"case\": \"50056\"},\n"
	    "  \"locked@contoso.com\": {\"password\": \"x\", \"case\": \"50053\"},\n"
	    "  \"expired@contoso.com\": {\"password\": \"x\", \"case\": \"50055\"},\n"
	    "  \"disabled@contoso.com\": {\"password\": \"x\", \"case\": \"50057\"},\n"
	    "  \"mfa@contoso.com\": {\"password\": \"x\", \"case\": \"50076\"},\n"
	    "  \"mfa2@contoso.com\": {\"password\": \"x\", \"case\": \"50079\"},\n"
	    "  \"ca@contoso.com\": {\"password\": \"x\", \"case\": \"53003\"}},\n"
	    " \"clients\": {\n"
	    "  \"11111111-2222-3333-4444-555555555555\": {\"public\": true, \"case\": \"ok\"},\n"
	    "  \"confidential\": {\"public\": false, \"secret\": \"s\", \"case\": \"ok\"},\n"
	    "  \"notfound\": {\"public\": true, \"case\": \"700016\"},\n"
	    "  \"noconsent\": {\"public\": true, \"case\": \"65001\"}},\n"
	    " \"mode\": \"%s\", \"expires_in\": 3599}\n", PW_ENTRA, PW_ENTRA, mode);
	write_file(path, text);
}

static void
ropc_accepted_and_verified(void **state)
{
	const char *conf = write_conf("ropc", "entra-ropc", fx.exo.port, 10,
	    "user = { map = \"%u@contoso.com\"; };");
	char tokens[700];
	struct run r;

	(void)state;
	NEED_TOKEN();
	write_users("normal");
	run_pam(service(conf, NULL), "alice", PW_ENTRA, &r);
	assert_int_equal(r.auth, PAM_SUCCESS);
	assert_int_equal(r.setcred, PAM_SUCCESS);
	(void)snprintf(tokens, sizeof(tokens), "%s/tokens.json", fx.state);
	assert_true(file_size(tokens) > 2);		/* a token was issued ... */
	assert_true(file_contains(fx.exo_tr, "AUTH user=alice@contoso.com ok"));	/* and used */
	assert_non_null(strstr(logbuf, "method=entra-ropc"));
}

static void
ropc_without_imap_check(void **state)
{
	const char *conf = write_conf_full("ropc-noverify", "entra-ropc", "verify_imap = false;",
	    NULL, fx.stall.port, 10, "user = { map = \"%u@contoso.com\"; };");
	struct run r;

	(void)state;
	NEED_TOKEN();
	write_users("normal");
	run_pam(service(conf, NULL), "alice", PW_ENTRA, &r);
	assert_int_equal(r.auth, PAM_SUCCESS);		/* the stalling IMAP server is never asked */
	assert_true(r.ms < 5000);
}

static void
ropc_token_refused_by_imap(void **state)
{
	const char *conf = write_conf("ropc-nomail", "entra-ropc", fx.exo_empty.port, 10,
	    "user = { map = \"%u@contoso.com\"; };");
	struct run r;

	(void)state;
	NEED_TOKEN();
	write_users("normal");
	run_pam(service(conf, NULL), "nomail", PW_ENTRA, &r);
	assert_int_equal(r.auth, PAM_PERM_DENIED);
	assert_int_not_equal(r.setcred, PAM_SUCCESS);
}

struct ropc_case {
	const char	*user;
	const char	*password;
	const char	*client_id;
	const char	*mode;
	int		 want;
	const char	*msg;		/* in the conversation, or NULL */
	const char	*log;		/* in the log */
};

static void
ropc_outcomes(void **state)
{
	static const struct ropc_case t[] = {
		{ "alice", "wrong-password-marker-7731", NULL, "normal", PAM_AUTH_ERR, NULL,
		  "AADSTS50126" },
		{ "ghost", "wrong-password-marker-7731", NULL, "normal", PAM_AUTH_ERR, NULL,
		  "AADSTS50034" },
		{ "nopw", "entra-secret-marker-5512", NULL, "normal", PAM_AUTH_ERR, NULL,
		  "AADSTS50056" },
		{ "locked", "entra-secret-marker-5512", NULL, "normal", PAM_AUTH_ERR, "locked",
		  "AADSTS50053" },
		{ "expired", "entra-secret-marker-5512", NULL, "normal", PAM_PERM_DENIED,
		  "https://aka.ms/sspr", "AADSTS50055" },
		{ "disabled", "entra-secret-marker-5512", NULL, "normal", PAM_PERM_DENIED,
		  "disabled", "AADSTS50057" },
		{ "mfa", "entra-secret-marker-5512", NULL, "normal", PAM_PERM_DENIED,
		  "multi-factor", "interaction_required" },
		{ "mfa2", "entra-secret-marker-5512", NULL, "normal", PAM_PERM_DENIED,
		  "multi-factor", "interaction_required" },
		{ "ca", "entra-secret-marker-5512", NULL, "normal", PAM_PERM_DENIED,
		  "Conditional Access", "AADSTS53003" },
		{ "alice", "entra-secret-marker-5512", "confidential", "normal",
		  PAM_AUTHINFO_UNAVAIL, NULL, "Allow public client flows" },
		{ "alice", "entra-secret-marker-5512", "notfound", "normal",
		  PAM_AUTHINFO_UNAVAIL, NULL, "unauthorized_client" },
		{ "alice", "entra-secret-marker-5512", "noconsent", "normal",
		  PAM_AUTHINFO_UNAVAIL, NULL, "consent" },
		{ "alice", "entra-secret-marker-5512", NULL, "429", PAM_AUTHINFO_UNAVAIL, NULL,
		  "HTTP 429" },
		{ "alice", "entra-secret-marker-5512", NULL, "500", PAM_AUTHINFO_UNAVAIL, NULL,
		  "result=authinfo_unavail" },
		{ "alice", "entra-secret-marker-5512", NULL, "503", PAM_AUTHINFO_UNAVAIL, NULL,
		  "result=authinfo_unavail" },
		{ "alice", "entra-secret-marker-5512", NULL, "truncated", PAM_AUTHINFO_UNAVAIL,
		  NULL, "result=authinfo_unavail" },
		{ "alice", "entra-secret-marker-5512", NULL, "html", PAM_AUTHINFO_UNAVAIL, NULL,
		  "result=authinfo_unavail" },
		{ "alice", "entra-secret-marker-5512", NULL, "garbage", PAM_AUTHINFO_UNAVAIL,
		  NULL, "result=authinfo_unavail" },
	};
	char extra[512];
	const char *conf;
	size_t i, mark;
	struct run r;

	(void)state;
	NEED_TOKEN();
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		(void)snprintf(extra, sizeof(extra), "user = { map = \"%%u@contoso.com\"; };\n");
		conf = write_conf_full("ropc-case", "entra-ropc", NULL, t[i].client_id,
		    fx.exo.port, 10, extra);
		write_users(t[i].mode);
		mark = loglen;
		run_pam(service(conf, NULL), t[i].user, t[i].password, &r);
		if (r.auth != t[i].want)
			fail_msg("case %zu (%s, %s, %s): got %d, want %d; log: %s", i, t[i].user,
			    t[i].client_id ? t[i].client_id : "-", t[i].mode, r.auth, t[i].want,
			    logbuf + mark);
		assert_int_not_equal(r.setcred, PAM_SUCCESS);
		if (t[i].msg != NULL && strstr(r.cs.msgs, t[i].msg) == NULL)
			fail_msg("case %zu: no \"%s\" for the user: %s", i, t[i].msg, r.cs.msgs);
		if (t[i].msg == NULL)
			assert_string_equal(r.cs.msgs, "");
		if (strstr(logbuf + mark, t[i].log) == NULL)
			fail_msg("case %zu: no \"%s\" in the log: %s", i, t[i].log, logbuf + mark);
	}
	write_users("normal");
	/* the admin's problems are loud: LOG_ALERT on the authpriv facility */
	assert_int_equal(line_prio("AADSTS7000218"), LOG_AUTHPRIV | LOG_ALERT);
	assert_int_equal(line_prio("AADSTS700016"), LOG_AUTHPRIV | LOG_ALERT);
	assert_int_equal(line_prio("AADSTS65001"), LOG_AUTHPRIV | LOG_ALERT);
	assert_int_equal(line_prio("(AADSTS50126)"), LOG_AUTHPRIV | LOG_NOTICE);
}

static void
ropc_without_token_client(void **state)
{
	const char *conf = write_conf("ropc-nohelper", "entra-ropc", fx.exo.port, 10,
	    "user = { map = \"%u@contoso.com\"; };");
	char dir[700], copy[800], text[8192];
	struct run r;

	(void)state;
	NEED_TOKEN();
	/* pam_o365.so alone in a directory: no pam_o365_oauth.so next to it */
	(void)snprintf(dir, sizeof(dir), "%s/lonely", fx.dir);
	(void)mkdir(dir, 0755);
	(void)snprintf(copy, sizeof(copy), "%s/pam_o365.so", dir);
	copy_file(fx.module, copy);
	(void)snprintf(text, sizeof(text), "auth required %s config=%s\n", copy, conf);
	write_users("normal");
	run_pam(text, "alice", PW_ENTRA, &r);
	assert_int_equal(r.auth, PAM_AUTHINFO_UNAVAIL);
	assert_non_null(strstr(logbuf, "token client"));
}

static void
ropc_slow_endpoint_times_out(void **state)
{
	const char *conf = write_conf("ropc-slow", "entra-ropc", fx.exo.port, 2,
	    "user = { map = \"%u@contoso.com\"; };");
	struct run r;

	(void)state;
	NEED_TOKEN();
	write_users("slow");
	run_pam(service(conf, NULL), "alice", PW_ENTRA, &r);
	write_users("normal");
	assert_int_equal(r.auth, PAM_AUTHINFO_UNAVAIL);
	assert_true(r.ms < 2000 + 5000);
}

/* ---- hostile servers (tests/fake/scenarios): never success, within the timeout ---- */

static void
hostile_servers(void **state)
{
	static const struct {
		const char	*script;
		const char	*tls;
	} t[] = {
		{ "imap-garbage", "implicit" },
		{ "imap-bye-greeting", "implicit" },
		{ "imap-bare-lf", "implicit" },
		{ "imap-nul-in-greeting", "implicit" },
		{ "imap-close-mid-reply", "implicit" },
		{ "imap-long-line", "implicit" },
		{ "imap-endless-untagged", "implicit" },
		{ "imap-silent-after-login", "implicit" },
		{ "imap-trickle-greeting", "implicit" },
		{ "tls-silent-handshake", "none" },
	};
	char prog[700], script[700], cert[700];
	const char *conf;
	struct o365_proc p;
	size_t i, mark;
	struct run r;

	(void)state;
	NEED_MODULE();
	(void)snprintf(prog, sizeof(prog), "%s/tests/fake/fakeserver.py", O365_SOURCE_DIR);
	(void)snprintf(cert, sizeof(cert), "%s/server", fx.pki);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *argv[] = { "/usr/bin/python3", prog, "--script", script, "--tls",
			(char *)t[i].tls, "--cert", cert, "--lifetime", "60", NULL };

		(void)snprintf(script, sizeof(script), "%s/tests/fake/scenarios/%s.txt",
		    O365_SOURCE_DIR, t[i].script);
		assert_int_equal(o365_proc_start(&p, argv, 1, 10000), 0);
		conf = write_conf("hostile", "imap-login", p.port, 2, NULL);
		mark = loglen;
		run_pam(service(conf, NULL), "bob", PW_GOOD, &r);
		o365_proc_stop(&p, 2000);
		if (r.auth != PAM_AUTHINFO_UNAVAIL)
			fail_msg("%s: got %d; log: %s", t[i].script, r.auth, logbuf + mark);
		if (r.ms >= 2000 + 5000)
			fail_msg("%s: took %ld ms with imap.timeout 2 s", t[i].script, r.ms);
	}
}

/* ---- threads: two handles at once, no shared state ---- */

struct thread_arg {
	const char	*conf;
	const char	*user;
	const char	*password;
	int		 rc;
};

static void *
thread_fn(void *p)
{
	struct thread_arg *a = p;
	struct conv_state cs;
	struct pam_conv conv = { conv_fn, &cs };
	char confdir[700];
	pam_handle_t *ph = NULL;
	int i;

	(void)snprintf(confdir, sizeof(confdir), "%s/pam.d", fx.dir);
	for (i = 0; i < 5; i++) {
		memset(&cs, 0, sizeof(cs));
		cs.password = a->password;
		a->rc = pam.start_confdir("o365-test", a->user, &conv, confdir, &ph);
		if (a->rc != PAM_SUCCESS)
			return NULL;
		a->rc = pam.authenticate(ph, 0);
		pam.end(ph, a->rc);
		if (a->rc != PAM_SUCCESS && a->password == PW_GOOD)
			return NULL;
	}
	return NULL;
}

static void
threads(void **state)
{
	const char *conf = write_conf("onprem", "imap-login", fx.onprem.port, 10, NULL);
	struct thread_arg a = { conf, "bob", PW_GOOD, -1 }, b = { conf, "bob", PW_WRONG, -1 };
	char confdir[700], path[800];
	pthread_t ta, tb;

	(void)state;
	NEED_MODULE();
	(void)snprintf(confdir, sizeof(confdir), "%s/pam.d", fx.dir);
	(void)mkdir(confdir, 0755);
	(void)snprintf(path, sizeof(path), "%s/o365-test", confdir);
	write_file(path, service(conf, NULL));
	assert_int_equal(pthread_create(&ta, NULL, thread_fn, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, thread_fn, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(a.rc, PAM_SUCCESS);
	assert_int_equal(b.rc, PAM_AUTH_ERR);
}

/* ---- the caller's signal handlers are as they were ---- */

static void
signals_untouched(void **state)
{
	struct sigaction now;
	int i;

	(void)state;
	NEED_MODULE();
	for (i = 1; i < NSIG; i++) {
		if (sigaction(i, NULL, &now) != 0)
			continue;
		if (now.sa_handler != fx.sig[i].sa_handler || now.sa_flags != fx.sig[i].sa_flags)
			fail_msg("the handler of signal %d changed", i);
	}
}

/* ---- last: no secret anywhere in what the module wrote ---- */

static void
no_secret_in_any_output(void **state)
{
	char path[700], quiet[700];
	static char tokens[1 << 20];
	size_t i, n, ntok = 0;
	FILE *f;
	char *p;

	(void)state;
	NEED_MODULE();
	assert_true(loglen > 0);
	assert_non_null(strstr(logbuf, "LOGIN \"bob\" <secret>"));	/* traces were on */
	if (fx.have_token_fake)
		assert_non_null(strstr(logbuf, "AUTHENTICATE XOAUTH2"));
	for (i = 0; i < sizeof(passwords) / sizeof(passwords[0]); i++)
		if (strstr(logbuf, passwords[i]) != NULL)
			fail_msg("password %zu found in the log", i);
	assert_null(strstr(logbuf, pw_long));
	assert_null(strstr(logbuf, "Corr3ct"));			/* not even a part */
	assert_null(strstr(logbuf, "marker"));
	assert_int_equal(openlog_calls, 0);
	(void)snprintf(quiet, sizeof(quiet), "%s/stdio.out", fx.dir);
	assert_int_equal(file_size(quiet), 0);			/* nothing on stdout/stderr */

	/* every access token fake_token.py issued: {"<token>": {...}, ...} */
	(void)snprintf(path, sizeof(path), "%s/tokens.json", fx.state);
	if ((f = fopen(path, "r")) == NULL)
		return;
	n = fread(tokens, 1, sizeof(tokens) - 1, f);
	fclose(f);
	tokens[n] = '\0';
	for (p = tokens; (p = strstr(p, "\n \"")) != NULL; ) {
		char *q, tok[8192];

		p += 3;
		if ((q = strchr(p, '"')) == NULL || (size_t)(q - p) >= sizeof(tok))
			break;
		memcpy(tok, p, (size_t)(q - p));
		tok[q - p] = '\0';
		p = q;
		if (strlen(tok) < 16)
			continue;
		ntok++;
		if (strstr(logbuf, tok) != NULL)
			fail_msg("an access token was found in the log");
		tok[16] = '\0';					/* nor a prefix of it */
		if (strstr(logbuf, tok) != NULL)
			fail_msg("part of an access token was found in the log");
	}
	if (fx.have_token_fake)
		assert_true(ntok > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(imap_login_accepted),
		cmocka_unit_test(imap_login_utf8_and_long_passwords),
		cmocka_unit_test(imap_login_wrong_password),
		cmocka_unit_test(imap_login_against_exchange_online),
		cmocka_unit_test(bad_credentials_send_nothing),
		cmocka_unit_test(never_answering_server_times_out),
		cmocka_unit_test(untrusted_certificate),
		cmocka_unit_test(connection_refused),
		cmocka_unit_test(missing_config),
		cmocka_unit_test(out_of_scope_is_ignored),
		cmocka_unit_test(out_of_scope_falls_through),
		cmocka_unit_test(setcred_only_after_our_success),
		cmocka_unit_test(use_first_pass_without_password),
		cmocka_unit_test(password_handed_on),
		cmocka_unit_test(ropc_accepted_and_verified),
		cmocka_unit_test(ropc_without_imap_check),
		cmocka_unit_test(ropc_token_refused_by_imap),
		cmocka_unit_test(ropc_outcomes),
		cmocka_unit_test(ropc_without_token_client),
		cmocka_unit_test(ropc_slow_endpoint_times_out),
		cmocka_unit_test(hostile_servers),
		cmocka_unit_test(threads),
		cmocka_unit_test(signals_untouched),
		cmocka_unit_test(no_secret_in_any_output),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
