/*
 * test_imap_dovecot.c: the IMAP client against a real, private Dovecot
 * (tests/fake/dovecot.sh) over verified TLS with the per-run test CA: every
 * account of DIR/users.txt logs in with LOGIN and AUTHENTICATE PLAIN; wrong
 * passwords and unknown users are O365_E_AUTH; an untrusted CA is
 * O365_E_TLS.  A second instance without LITERAL+ makes LOGIN use
 * synchronising literals for UTF-8 passwords.  Skipped (with the reason)
 * when not root or when dovecot is not installed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "o365/conn.h"
#include "o365/imap.h"
#include "o365/limits.h"
#include "spawn.h"
#include "testutil.h"

#define MAX_USERS	32

struct account {
	char	*user;
	char	*pass;
};

struct env {
	char		 tmp[256];
	char		 pki[300];
	char		 ca[320];
	char		 other_ca[320];
	char		 dir[2][300];	/* [0] stock Dovecot, [1] without LITERAL+ */
	int		 port[2];
	int		 started[2];
	struct account	 acct[MAX_USERS];
	int		 nacct;
	const char	*skip;		/* why the tests are skipped, or NULL */
};

static struct env env;

/* ---- a capture sink: no password may ever reach it ---- */

static struct o365_test_capture cap;

static const struct o365_log test_log = { o365_test_capture_sink, &cap, 1 };

static void
assert_not_logged(const char *secret)
{
	if (cap.dropped != 0)
		fail_msg("log capture full");
	if (memmem(cap.text, cap.len, secret, strlen(secret)) != NULL)
		fail_msg("a password reached the log");
}

/* ---- setup: PKI, two Dovecot instances, the account list ---- */

static int
run_wait(char *const argv[], int want_port, int *port_out)
{
	struct o365_proc p;
	int status;

	if (o365_proc_start(&p, argv, want_port, 30000) != 0)
		return -1;
	if (o365_proc_wait(&p, 60000, &status) != 0) {
		o365_proc_stop(&p, 1000);
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -1;
	if (port_out != NULL)
		*port_out = p.port;
	return 0;
}

static int
load_accounts(const char *dir)
{
	char path[400], line[2048], *tab;
	FILE *f;

	snprintf(path, sizeof(path), "%s/users.txt", dir);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (env.nacct < MAX_USERS && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if ((tab = strchr(line, '\t')) == NULL)
			continue;
		*tab = '\0';
		env.acct[env.nacct].user = strdup(line);
		env.acct[env.nacct].pass = strdup(tab + 1);
		if (env.acct[env.nacct].user == NULL || env.acct[env.nacct].pass == NULL)
			break;
		env.nacct++;
	}
	fclose(f);
	return env.nacct > 0 ? 0 : -1;
}

static int
group_setup(void **state)
{
	char script[400], mkcerts[400];
	int i;

	(void)state;
	if (geteuid() != 0) {
		env.skip = "Dovecot tests need root (dovecot drops privileges itself)";
		return 0;
	}
	if (access("/usr/sbin/dovecot", X_OK) != 0) {
		env.skip = "dovecot is not installed (apt-get install dovecot-imapd)";
		return 0;
	}
	if (o365_test_tmpdir(env.tmp, sizeof(env.tmp)) != 0)
		return -1;
	/* Dovecot's auth (dovecot) and imap (nobody) processes must reach it */
	if (chmod(env.tmp, 0711) != 0)
		return -1;
	snprintf(env.pki, sizeof(env.pki), "%s/pki", env.tmp);
	snprintf(env.ca, sizeof(env.ca), "%s/ca.pem", env.pki);
	snprintf(env.other_ca, sizeof(env.other_ca), "%s/other-ca.pem", env.pki);
	o365_test_src("tests/fake/mkcerts.sh", mkcerts, sizeof(mkcerts));
	o365_test_src("tests/fake/dovecot.sh", script, sizeof(script));
	{
		char *const argv[] = { "bash", mkcerts, env.pki, NULL };

		if (run_wait(argv, 0, NULL) != 0) {
			fprintf(stderr, "mkcerts.sh failed\n");
			return -1;
		}
	}
	for (i = 0; i < 2; i++) {
		char *const argv[] = { "bash", script, "start", env.dir[i], env.pki, NULL };

		snprintf(env.dir[i], sizeof(env.dir[i]), "%s/dovecot%d", env.tmp, i);
		if (i == 1)
			setenv("DOVECOT_IMAP_CAPABILITY", "IMAP4rev1 SASL-IR", 1);
		if (run_wait(argv, 1, &env.port[i]) != 0) {
			fprintf(stderr, "dovecot.sh start %s failed\n", env.dir[i]);
			unsetenv("DOVECOT_IMAP_CAPABILITY");
			return -1;
		}
		unsetenv("DOVECOT_IMAP_CAPABILITY");
		env.started[i] = 1;
	}
	return load_accounts(env.dir[0]);
}

static int
group_teardown(void **state)
{
	char script[400];
	int i;

	(void)state;
	o365_test_src("tests/fake/dovecot.sh", script, sizeof(script));
	for (i = 0; i < 2; i++) {
		char *const argv[] = { "bash", script, "stop", env.dir[i], NULL };

		if (env.started[i] && run_wait(argv, 0, NULL) != 0)
			fprintf(stderr, "dovecot.sh stop %s failed\n", env.dir[i]);
	}
	for (i = 0; i < env.nacct; i++) {
		free(env.acct[i].user);
		free(env.acct[i].pass);
	}
	if (env.tmp[0] != '\0')
		o365_test_rmtree(env.tmp);
	return 0;
}

#define SKIP_IF_NEEDED() do { \
	if (env.skip != NULL) { \
		print_message("skipped: %s\n", env.skip); \
		skip(); \
	} \
} while (0)

/* ---- one login ---- */

enum method { M_LOGIN, M_PLAIN };

static int
try_login(int inst, const char *ca, enum method m, const char *user, const char *pass,
    struct o365_error *err)
{
	struct o365_tls_opts tls = { .ca_file = ca };
	struct o365_deadline dl;
	struct o365_imap *im = NULL;
	struct o365_error lerr;
	int r;

	o365_deadline_in(&dl, 20000);
	r = o365_imap_connect("127.0.0.1", (unsigned int)env.port[inst], &tls, &dl, &test_log, &im, err);
	if (r != O365_OK)
		return r;
	assert_true(o365_conn_is_tls(o365_imap_conn(im)));
	assert_non_null(strstr(o365_imap_greeting(im), "Dovecot"));
	assert_int_equal(o365_imap_has_cap(im, "LITERAL+"), inst == 0);
	if (m == M_LOGIN)
		r = o365_imap_login(im, user, pass, strlen(pass), &dl, err);
	else
		r = o365_imap_auth_plain(im, user, pass, strlen(pass), &dl, err);
	if (r == O365_OK)
		assert_int_equal(o365_imap_logout(im, &dl, &lerr), O365_OK);
	o365_imap_free(&im);
	return r;
}

static void
every_account_logs_in(void **state)
{
	struct o365_error err;
	int i, inst, m;

	(void)state;
	SKIP_IF_NEEDED();
	assert_true(env.nacct >= 8);
	for (inst = 0; inst < 2; inst++) {
		for (i = 0; i < env.nacct; i++) {
			for (m = M_LOGIN; m <= M_PLAIN; m++) {
				print_message("instance %d user %s method %s\n", inst, env.acct[i].user,
				    m == M_LOGIN ? "LOGIN" : "PLAIN");
				if (try_login(inst, env.ca, m, env.acct[i].user, env.acct[i].pass,
				    &err) != O365_OK)
					fail_msg("%s: %s", env.acct[i].user, err.why);
				assert_not_logged(env.acct[i].pass);
			}
		}
	}
}

static void
wrong_credentials_are_auth(void **state)
{
	struct o365_error err;
	char wrong[600];
	int i, m;

	(void)state;
	SKIP_IF_NEEDED();
	for (i = 0; i < env.nacct; i++) {
		/* the right password with one more byte */
		snprintf(wrong, sizeof(wrong), "%sX", env.acct[i].pass);
		for (m = M_LOGIN; m <= M_PLAIN; m++) {
			print_message("user %s method %d\n", env.acct[i].user, m);
			assert_int_equal(try_login(i % 2, env.ca, m, env.acct[i].user, wrong, &err),
			    O365_E_AUTH);
			assert_non_null(strstr(err.why, "AUTHENTICATIONFAILED"));
			assert_not_logged(wrong);
		}
	}
	assert_int_equal(try_login(0, env.ca, M_LOGIN, "nobody-here", "pw", &err), O365_E_AUTH);
	assert_int_equal(try_login(0, env.ca, M_PLAIN, "nobody-here", "pw", &err), O365_E_AUTH);
}

static void
untrusted_ca_is_tls_error(void **state)
{
	struct o365_error err;

	(void)state;
	SKIP_IF_NEEDED();
	assert_int_equal(try_login(0, env.other_ca, M_LOGIN, env.acct[0].user, env.acct[0].pass, &err),
	    O365_E_TLS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_account_logs_in),
		cmocka_unit_test(wrong_credentials_are_auth),
		cmocka_unit_test(untrusted_ca_is_tls_error),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
