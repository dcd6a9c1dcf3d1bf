/*
 * o365-authtest USER [-c CONFIG] [-d]: check a password the way pam_o365.so
 * would, printing each step (connect, TLS, IMAP greeting and capabilities or
 * the token endpoint's answer, result).  Secrets are never printed.
 *
 * The password is read from /dev/tty without echo, or as one line from
 * stdin when stdin is not a terminal (scripts and tests).
 *
 * Exit: 0 accepted, 1 refused (wrong password, denied), 2 could not check,
 * 3 out of the module's scope, 64 usage, 78 unusable configuration.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <security/_pam_types.h>

#include "o365/conn.h"
#include "o365/deadline.h"
#include "o365/imap.h"
#include "o365/limits.h"
#include "o365/oauth.h"
#include "o365/secret.h"
#include "pam_o365_int.h"

#define EXIT_REFUSED	1
#define EXIT_UNAVAIL	2
#define EXIT_SCOPE	3
#define EXIT_USAGE	64
#define EXIT_CONFIG	78

static void
usage(void)
{
	fprintf(stderr, "usage: o365-authtest USER [-c CONFIG] [-d]\n");
}

static void
out_sink(void *ctx, int prio, const char *msg)
{
	(void)ctx;
	printf("  log[%d]: %s\n", prio, msg);
}

static void
obs_step(void *ctx, const char *what, const char *detail)
{
	char clean[512];

	(void)ctx;
	o365_sanitize(clean, sizeof(clean), detail, strlen(detail));
	printf("%s: %s\n", what, clean);
}

static void
obs_imap(void *ctx, struct o365_imap *im)
{
	static const char *const caps[] = { "IMAP4rev1", "AUTH=PLAIN", "AUTH=XOAUTH2",
		"SASL-IR", "LOGINDISABLED", "STARTTLS", NULL };
	struct o365_tls_info ti;
	size_t i;

	(void)ctx;
	if (o365_conn_tls_info(o365_imap_conn(im), &ti) == O365_OK) {
		printf("tls: %s %s, verification: %s\n", ti.version, ti.cipher, ti.verify);
		printf("tls: subject: %s\n", ti.subject);
		printf("tls: issuer: %s\n", ti.issuer);
		printf("tls: not after: %s, chain length %d\n", ti.not_after, ti.chain_len);
	} else {
		printf("tls: no TLS information\n");
	}
	printf("imap: greeting: %s\n", o365_imap_greeting(im));
	printf("imap: capabilities:");
	for (i = 0; caps[i] != NULL; i++)
		if (o365_imap_has_cap(im, caps[i]))
			printf(" %s", caps[i]);
	printf("\n");
}

static void
obs_token(void *ctx, int rc, const struct o365_token *tok,
    const struct o365_oauth_error *oerr, const struct o365_error *err)
{
	(void)ctx;
	if (rc == O365_OK && tok != NULL) {
		printf("token: issued, type %s, expires in %ld s, scope %s, "
		    "access token <secret>\n", tok->token_type, tok->expires_in, tok->scope);
		return;
	}
	if (oerr->http_status != 0 || oerr->error[0] != '\0') {
		printf("token: HTTP %ld, error %s", oerr->http_status,
		    oerr->error[0] != '\0' ? oerr->error : "-");
		if (oerr->aadsts != 0)
			printf(", AADSTS%ld", oerr->aadsts);
		if (oerr->retry_after != 0)
			printf(", retry after %ld s", oerr->retry_after);
		printf("\n");
		if (oerr->description[0] != '\0')
			printf("token: %s\n", oerr->description);
		if (oerr->trace_id[0] != '\0' || oerr->correlation_id[0] != '\0')
			printf("token: trace id %s, correlation id %s\n", oerr->trace_id,
			    oerr->correlation_id);
	}
	if (rc != O365_OK)
		printf("token: %s: %s\n", o365_err_name(rc), err->why);
}

/* One line from fd into buf (without the LF); cleansed on error. -1 on EOF/error/too long. */
static int
read_line(int fd, char *buf, size_t bufsz, size_t *len_out)
{
	size_t n = 0;
	char ch;

	for (;;) {
		ssize_t r = read(fd, &ch, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (ch == '\n') {
			buf[n] = '\0';
			*len_out = n;
			return 0;
		}
		if (n + 1 >= bufsz) {
			o365_cleanse(buf, bufsz);
			return -1;
		}
		buf[n++] = ch;
	}
	if (n == 0) {
		return -1;
	}
	buf[n] = '\0';		/* last line without LF */
	*len_out = n;
	return 0;
}

/*
 * The terminal state to restore if a signal ends us while echo is off.
 * (A program, not the module: this global state is ours.)
 */
static struct termios tty_saved;
static volatile sig_atomic_t tty_fd = -1;

static void
tty_restore_and_die(int sig)
{
	if (tty_fd >= 0)
		(void)tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
	signal(sig, SIG_DFL);
	raise(sig);
}

static int
read_password(char *buf, size_t bufsz, size_t *len_out)
{
	static const int sigs[] = { SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGTSTP };
	struct sigaction sa, prev[sizeof(sigs) / sizeof(sigs[0])];
	struct termios noecho;
	size_t i;
	int fd, r;

	if (!isatty(STDIN_FILENO))
		return read_line(STDIN_FILENO, buf, bufsz, len_out);
	if ((fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)) < 0)
		return -1;
	if (tcgetattr(fd, &tty_saved) != 0) {
		close(fd);
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = tty_restore_and_die;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		(void)sigaction(sigs[i], &sa, &prev[i]);
	tty_fd = fd;
	noecho = tty_saved;
	noecho.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	(void)!write(fd, "Password: ", 10);
	if (tcsetattr(fd, TCSAFLUSH, &noecho) != 0)
		r = -1;
	else
		r = read_line(fd, buf, bufsz, len_out);
	(void)tcsetattr(fd, TCSAFLUSH, &tty_saved);
	tty_fd = -1;
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		(void)sigaction(sigs[i], &prev[i], NULL);
	(void)!write(fd, "\n", 1);
	close(fd);
	return r;
}

static int
exit_code(int pam)
{
	switch (pam) {
	case PAM_SUCCESS:	return 0;
	case PAM_AUTH_ERR:
	case PAM_PERM_DENIED:	return EXIT_REFUSED;
	default:		return EXIT_UNAVAIL;
	}
}

int
main(int argc, char **argv)
{
	struct o365_log lg = { out_sink, NULL, 0 };
	struct pam_o365_observer obs = { obs_step, obs_imap, obs_token, NULL };
	struct pam_o365_conf conf;
	struct pam_o365_account acct;
	struct pam_o365_result res;
	struct o365_error err;
	struct timespec start;
	const char *config = PAM_O365_DEFAULT_CONFIG, *user = NULL, *why = NULL;
	char login[O365_MAX_CREDENTIAL + 1];
	char pass[O365_MAX_CREDENTIAL + 2];
	size_t passlen = 0;
	int i, ex;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			config = argv[++i];
		else if (strcmp(argv[i], "-d") == 0)
			lg.debug = 1;
		else if (argv[i][0] != '-' && user == NULL)
			user = argv[i];
		else {
			usage();
			return EXIT_USAGE;
		}
	}
	if (user == NULL) {
		usage();
		return EXIT_USAGE;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	o365_error_clear(&err);
	if (pam_o365_conf_load(config, &conf, &err) != O365_OK) {
		printf("config: %s: unusable: %s\n", config, err.why);
		return EXIT_CONFIG;
	}
	printf("config: %s: method %s, imap %s:%d, timeout %d s%s\n", config, conf.auth.method,
	    conf.imap.host, conf.imap.port, conf.imap.timeout,
	    conf.method == PAM_O365_ENTRA_ROPC ?
	    (conf.auth.verify_imap ? ", verify_imap on" : ", verify_imap off") : "");
	if (conf.method == PAM_O365_ENTRA_ROPC)
		printf("config: authority %s, tenant %s, client_id %s\n", conf.oauth.authority,
		    conf.oauth.tenant, conf.oauth.client_id);

	if (pam_o365_map_user(conf.user.map, conf.user.lowercase, user, login, sizeof(login),
	    &err) != O365_OK) {
		printf("user: refused before anything is sent: %s\n", err.why);
		printf("result: auth_err\n");
		ex = EXIT_REFUSED;
		goto out;
	}
	printf("user: %s -> login %s\n", user, login);
	if (pam_o365_account_lookup(user, &acct, &err) != O365_OK) {
		printf("scope: local account lookup failed: %s\n", err.why);
		ex = EXIT_UNAVAIL;
		goto out;
	}
	if (pam_o365_scope_decide(&conf, user, &acct, &why) != PAM_O365_IN_SCOPE) {
		pam_o365_account_free(&acct);
		printf("scope: out of scope (%s): the module returns PAM_IGNORE\n", why);
		ex = EXIT_SCOPE;
		goto out;
	}
	printf("scope: in scope (%s)\n", acct.exists ? "local account" : "no local account");
	pam_o365_account_free(&acct);

	if (read_password(pass, sizeof(pass), &passlen) != 0) {
		printf("password: cannot read one\n");
		ex = EXIT_USAGE;
		goto out;
	}
	printf("password: read (<secret>)\n");
	(void)clock_gettime(CLOCK_MONOTONIC, &start);
	pam_o365_check(&conf, login, pass, passlen, &lg, &obs, pam_o365_oauth_api(), &res);
	o365_cleanse(pass, sizeof(pass));
	if (res.user_msg != NULL)
		printf("message for the user: %s\n", res.user_msg);
	printf("result: %s (%s) in %ld ms\n", pam_o365_result_name(res.pam), res.reason,
	    o365_elapsed_ms(&start));
	ex = exit_code(res.pam);
out:
	o365_cleanse(pass, sizeof(pass));
	pam_o365_conf_free(&conf);
	return ex;
}
