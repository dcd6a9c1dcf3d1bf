/*
 * test_smtp_postfix.c: the SMTP client against a real Postfix 3.7 submission
 * server (tests/fake/postfix.sh: STARTTLS required, AUTH PLAIN/LOGIN after
 * TLS, every message captured to DIR/out).  Checks the delivered bytes and
 * envelope exactly.  Needs root, postfix and dovecot; skipped otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "o365/sasl.h"
#include "o365/smtp.h"
#include "fakeserver.h"
#include "spawn.h"
#include "testutil.h"

/* a password with spaces and both kinds of quotes */
#define ALICE		"alice@example.com"
#define ALICE_PW	"pa ss \"w0rd\" 'x' "
#define BOB		"bob"
#define BOB_PW		"s3cret two"

struct postfix {
	int	up;
	char	skip[200];
	char	pki[256];
	char	dir[256];
	char	cafile[300];
	int	port;
	int	delivered;		/* messages so far: the next is delivered + 1 */
};

static struct postfix pf;

static int
run_script(char *const argv[], int want_port, int *port_out)
{
	struct o365_proc p;
	int status;

	if (o365_proc_start(&p, argv, want_port, 60000) != 0)
		return -1;
	if (o365_proc_wait(&p, 60000, &status) != 0) {
		(void)o365_proc_stop(&p, 1000);
		return -1;
	}
	if (port_out != NULL)
		*port_out = p.port;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int
have(const char *path)
{
	return access(path, X_OK) == 0;
}

static int
group_setup(void **state)
{
	char script[300];

	(void)state;
	memset(&pf, 0, sizeof(pf));
	if (geteuid() != 0) {
		snprintf(pf.skip, sizeof(pf.skip), "needs root to run Postfix");
		return 0;
	}
	if (!have("/usr/sbin/postfix") || !have("/usr/sbin/dovecot")) {
		snprintf(pf.skip, sizeof(pf.skip), "needs postfix and dovecot installed");
		return 0;
	}
	if (o365_fake_make_pki(pf.pki, sizeof(pf.pki)) != 0 ||
	    o365_test_tmpdir(pf.dir, sizeof(pf.dir)) != 0 ||
	    o365_test_src("tests/fake/postfix.sh", script, sizeof(script)) == NULL)
		return -1;
	snprintf(pf.cafile, sizeof(pf.cafile), "%s/ca.pem", pf.pki);
	{
		char *argv[] = { "/bin/bash", script, "start", pf.dir, pf.pki, ALICE, ALICE_PW,
		    BOB, BOB_PW, NULL };

		if (run_script(argv, 1, &pf.port) != 0 || pf.port <= 0) {
			fprintf(stderr, "postfix.sh start failed (see %s/maillog)\n", pf.dir);
			return -1;
		}
	}
	pf.up = 1;
	return 0;
}

static int
group_teardown(void **state)
{
	char script[300];
	int r = 0;

	(void)state;
	if (pf.up) {
		char *argv[] = { "/bin/bash", script, "stop", pf.dir, NULL };

		if (o365_test_src("tests/fake/postfix.sh", script, sizeof(script)) == NULL ||
		    run_script(argv, 0, NULL) != 0)
			r = -1;
	}
	if (pf.dir[0] != '\0')
		o365_test_rmtree(pf.dir);
	if (pf.pki[0] != '\0')
		o365_test_rmtree(pf.pki);
	return r;
}

#define NEED_POSTFIX() do {						\
	if (pf.skip[0] != '\0') {					\
		fprintf(stderr, "skipped: %s\n", pf.skip);		\
		skip();							\
	}								\
} while (0)

static struct o365_smtp *
connect_postfix(const struct o365_log *lg)
{
	struct o365_tls_opts tls = { pf.cafile, NULL, 0 };
	struct o365_smtp_opts o = { "localhost", (unsigned)pf.port, O365_SMTP_STARTTLS, &tls,
	    "client.example" };
	struct o365_deadline dl;
	struct o365_error err;
	struct o365_smtp *s = NULL;

	o365_deadline_in(&dl, 20000);
	if (o365_smtp_connect(&o, &dl, lg, &s, &err) != O365_OK)
		fail_msg("connect to Postfix: %s", err.why);
	return s;
}

/* Read a whole file (NULL if missing); *n gets its size. */
/* Wait (bounded, 30 s) for DIR/out/<n>.eml, then check it and <n>.env. */
static void
expect_delivery(int n, const char *eml, size_t emllen, const char *env)
{
	struct timespec tick = { 0, 100 * 1000 * 1000 };
	char path[400];
	size_t len;
	char *got;
	int i;

	snprintf(path, sizeof(path), "%s/out/%d.eml", pf.dir, n);
	for (i = 0; i < 300 && access(path, F_OK) != 0; i++)
		nanosleep(&tick, NULL);
	if ((got = o365_test_slurp(path, &len)) == NULL)
		fail_msg("message %d was not delivered (see %s/maillog)", n, pf.dir);
	if (len != emllen || memcmp(got, eml, len) != 0)
		fail_msg("message %d differs:\n--- got (%zu bytes)\n%s\n--- expected (%zu bytes)\n%s",
		    n, len, got, emllen, eml);
	free(got);
	snprintf(path, sizeof(path), "%s/out/%d.env", pf.dir, n);
	assert_non_null(got = o365_test_slurp(path, &len));
	assert_string_equal(got, env);
	free(got);
}

/* What we submit: LF line ends, dot lines, 8-bit bytes, no final newline. */
static const char MSG[] =
    "From: Alice <alice@example.com>\n"
    "To: carol@example.net, dave@example.org\n"
    "Subject: dots and 8-bit\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    ".leading dot\n"
    "..two dots\n"
    ".\n"
    "caf\xc3\xa9 \xe2\x82\xac \xff\xfe\n"
    "\n"
    "last line without a newline";

static void
send_one(int mech, const char *user, const char *pw, const char *from, int want_delivery_n)
{
	const char *rcpts[] = { "carol@example.net", "dave@example.org" };
	struct o365_test_capture *cap = calloc(1, sizeof(*cap));
	struct o365_log lg = { o365_test_capture_sink, cap, 1 };
	struct o365_deadline dl;
	struct o365_error err;
	struct o365_smtp *s;
	char env[256], *eml;
	int codes[2], fd;

	assert_non_null(cap);
	s = connect_postfix(&lg);
	assert_true((o365_smtp_caps(s)->auth & (O365_SASL_PLAIN | O365_SASL_LOGIN)) ==
	    (O365_SASL_PLAIN | O365_SASL_LOGIN));
	assert_true(o365_smtp_caps(s)->pipelining && o365_smtp_caps(s)->eightbitmime);
	o365_deadline_in(&dl, 20000);
	if (o365_smtp_auth(s, mech, user, pw, strlen(pw), &dl, &err) != O365_OK)
		fail_msg("AUTH: %s", err.why);
	assert_int_equal(o365_smtp_envelope(s, from, (off_t)sizeof(MSG), O365_SMTP_8BIT, rcpts, 2,
	    codes, NULL, &dl, &err), O365_OK);
	assert_int_equal(codes[0], 250);
	assert_int_equal(codes[1], 250);
	assert_true((fd = o365_test_memfile(MSG, sizeof(MSG) - 1)) >= 0);
	if (o365_smtp_data_fd(s, fd, &dl, &err) != O365_OK)
		fail_msg("DATA: %s", err.why);
	close(fd);
	assert_int_equal(o365_smtp_last_reply(s)->code, 250);
	o365_smtp_quit(&s, &dl);

	/* Postfix hands the pipe LF line ends, dots unstuffed, plus the final
	 * newline we had to add */
	assert_non_null(eml = malloc(sizeof(MSG) + 1));
	memcpy(eml, MSG, sizeof(MSG) - 1);
	eml[sizeof(MSG) - 1] = '\n';
	snprintf(env, sizeof(env), "MAIL FROM:<%s>\nRCPT TO:<carol@example.net>\n"
	    "RCPT TO:<dave@example.org>\n", from);
	expect_delivery(want_delivery_n, eml, sizeof(MSG), env);
	free(eml);
	if (strstr(cap->text, pw) != NULL)
		fail_msg("the password is in the log:\n%s", cap->text);
	free(cap);
}

static void
auth_plain_delivers_exact_bytes(void **state)
{
	(void)state;
	NEED_POSTFIX();
	send_one(O365_SASL_PLAIN, ALICE, ALICE_PW, ALICE, ++pf.delivered);
}

static void
auth_login_delivers_exact_bytes(void **state)
{
	(void)state;
	NEED_POSTFIX();
	send_one(O365_SASL_LOGIN, ALICE, ALICE_PW, ALICE, ++pf.delivered);
	/* a bounce: the null reverse-path, a user name without a domain */
	send_one(O365_SASL_LOGIN, BOB, BOB_PW, "", ++pf.delivered);
}

static void
wrong_password_is_auth(void **state)
{
	static const int mechs[] = { O365_SASL_PLAIN, O365_SASL_LOGIN };
	size_t i;

	(void)state;
	NEED_POSTFIX();
	for (i = 0; i < 2; i++) {
		const char *bad = "pa ss \"w0rd\" 'y' ";
		struct o365_deadline dl;
		struct o365_error err;
		struct o365_smtp *s = connect_postfix(NULL);

		o365_deadline_in(&dl, 20000);
		assert_int_equal(o365_smtp_auth(s, mechs[i], ALICE, bad, strlen(bad), &dl, &err),
		    O365_E_AUTH);
		assert_int_equal(err.reply, 535);
		assert_string_equal(err.enhanced, "5.7.8");
		/* the session stays usable: a 535 is not the end of it */
		assert_int_equal(o365_smtp_rset(s, &dl, &err), O365_OK);
		o365_smtp_quit(&s, &dl);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(auth_plain_delivers_exact_bytes),
		cmocka_unit_test(auth_login_delivers_exact_bytes),
		cmocka_unit_test(wrong_password_is_auth),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
