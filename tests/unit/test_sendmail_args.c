/* test_sendmail_args.c: the sendmail command line as real callers use it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "sm.h"

struct inv {
	const char	*who;
	const char	*argv[16];
	int		 ok;
	enum sm_mode	 mode;
	enum sm_deliv	 deliv;
	int		 t, i;
	const char	*sender, *fullname;
	const char	*rcpt0;
	size_t		 nrcpt;
};

static const struct inv table[] = {
	/* Debian cron (MAILARGS "%s -FCronDaemon -i -B8BITMIME -oem %s") */
	{ "cron", { "/usr/sbin/sendmail", "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root" },
	  1, SM_MODE_SEND, SM_DELIV_BACKGROUND, 0, 1, NULL, "CronDaemon", "root", 1 },
	/* bsd-mailx 8.1.2 on Debian 12 (probed: "-i -t", "-i -t -f ADDR" for mail -r) */
	{ "mailx", { "sendmail", "-i", "-t" }, 1, SM_MODE_SEND, SM_DELIV_BACKGROUND, 1, 1, NULL, NULL, NULL, 0 },
	{ "mailx -r", { "sendmail", "-i", "-t", "-f", "me@example.com" },
	  1, SM_MODE_SEND, SM_DELIV_BACKGROUND, 1, 1, "me@example.com", NULL, NULL, 0 },
	/* mutt, older mailx: -oi and "--" before the recipients */
	{ "mutt", { "sendmail", "-oem", "-oi", "--", "bob@example.com", "-carol@example.com" },
	  1, SM_MODE_SEND, SM_DELIV_BACKGROUND, 0, 1, NULL, NULL, "bob@example.com", 2 },
	/* git send-email --smtp-server=/usr/sbin/sendmail: [-f from] -i rcpts */
	{ "git", { "sendmail", "-i", "a@example.com", "b@example.com" },
	  1, SM_MODE_SEND, SM_DELIV_BACKGROUND, 0, 1, NULL, NULL, "a@example.com", 2 },
	{ "git -f", { "sendmail", "-f", "dev@example.com", "-i", "a@example.com" },
	  1, SM_MODE_SEND, SM_DELIV_BACKGROUND, 0, 1, "dev@example.com", NULL, "a@example.com", 1 },
	/* PHP mail(): sendmail_path "sendmail -t -i" */
	{ "php", { "sendmail", "-t", "-i" }, 1, SM_MODE_SEND, SM_DELIV_BACKGROUND, 1, 1, NULL, NULL, NULL, 0 },
	/* Symfony: "-bs", or "-t -i" with -f'addr' (escapeshellarg: attached) */
	{ "symfony -bs", { "sendmail", "-bs" }, 1, SM_MODE_SMTP, SM_DELIV_BACKGROUND, 0, 0, NULL, NULL, NULL, 0 },
	{ "symfony -t", { "sendmail", "-t", "-i", "-fbounce@example.com" },
	  1, SM_MODE_SEND, SM_DELIV_BACKGROUND, 1, 1, "bounce@example.com", NULL, NULL, 0 },
	/* unattended-upgrades, smartd, mdadm */
	{ "unattended-upgrades", { "sendmail", "-oi", "-t" }, 1, SM_MODE_SEND, SM_DELIV_BACKGROUND, 1, 1, NULL, NULL, NULL, 0 },
	{ "smartd", { "sendmail", "root" }, 1, SM_MODE_SEND, SM_DELIV_BACKGROUND, 0, 0, NULL, NULL, "root", 1 },
	{ "grouped -ti", { "sendmail", "-ti" }, 1, SM_MODE_SEND, SM_DELIV_BACKGROUND, 1, 1, NULL, NULL, NULL, 0 },
	{ "-r", { "sendmail", "-r", "x@example.com", "-F", "Full Name", "y" },
	  1, SM_MODE_SEND, SM_DELIV_BACKGROUND, 0, 0, "x@example.com", "Full Name", "y", 1 },
	/* delivery modes */
	{ "-odi", { "sendmail", "-odi", "root" }, 1, SM_MODE_SEND, SM_DELIV_INTERACTIVE, 0, 0, NULL, NULL, "root", 1 },
	{ "-odq", { "sendmail", "-odq", "root" }, 1, SM_MODE_SEND, SM_DELIV_QUEUE, 0, 0, NULL, NULL, "root", 1 },
	{ "-o dq", { "sendmail", "-o", "dq", "root" }, 1, SM_MODE_SEND, SM_DELIV_QUEUE, 0, 0, NULL, NULL, "root", 1 },
	{ "-odb", { "sendmail", "-odb", "root" }, 1, SM_MODE_SEND, SM_DELIV_BACKGROUND, 0, 0, NULL, NULL, "root", 1 },
	/* ignored options */
	{ "ignored", { "sendmail", "-N", "never", "-R", "hdrs", "-V", "envid", "-L", "x", "-G", "-U", "root" },
	  1, SM_MODE_SEND, SM_DELIV_BACKGROUND, 0, 0, NULL, NULL, "root", 1 },
	{ "ignored 2", { "sendmail", "-Xlog", "-oep", "-O", "Foo=bar", "-B", "7BIT", "-m", "root" },
	  1, SM_MODE_SEND, SM_DELIV_BACKGROUND, 0, 0, NULL, NULL, "root", 1 },
	/* modes */
	{ "-bp", { "sendmail", "-bp" }, 1, SM_MODE_LIST, SM_DELIV_BACKGROUND, 0, 0, NULL, NULL, NULL, 0 },
	{ "mailq", { "/usr/bin/mailq" }, 1, SM_MODE_LIST, SM_DELIV_BACKGROUND, 0, 0, NULL, NULL, NULL, 0 },
	{ "newaliases", { "newaliases" }, 1, SM_MODE_NEWALIASES, SM_DELIV_BACKGROUND, 0, 0, NULL, NULL, NULL, 0 },
	{ "-bv", { "sendmail", "-bv", "root" }, 1, SM_MODE_VERIFY, SM_DELIV_BACKGROUND, 0, 0, NULL, NULL, "root", 1 },
	{ "-q", { "sendmail", "-q" }, 1, SM_MODE_RUNQ, SM_DELIV_BACKGROUND, 0, 0, NULL, NULL, NULL, 0 },
	{ "-bm", { "sendmail", "-bm", "root" }, 1, SM_MODE_SEND, SM_DELIV_BACKGROUND, 0, 0, NULL, NULL, "root", 1 },
	{ "--init", { "sendmail", "--init", "/tmp/q" }, 1, SM_MODE_INIT, SM_DELIV_BACKGROUND, 0, 0, NULL, NULL, NULL, 0 },
	{ "recipient -x", { "sendmail", "root", "-t" }, 1, SM_MODE_SEND, SM_DELIV_BACKGROUND, 0, 0, NULL, NULL, "root", 2 },
	{ "dash rcpt", { "sendmail", "--", "-oi" }, 1, SM_MODE_SEND, SM_DELIV_BACKGROUND, 0, 0, NULL, NULL, "-oi", 1 },
	/* refused */
	{ "unknown", { "sendmail", "-Z", "root" }, .ok = 0 },
	{ "unknown long", { "sendmail", "--frobnicate", "root" }, .ok = 0 },
	{ "unknown grouped", { "sendmail", "-tz", "root" }, .ok = 0 },
	{ "unknown mode", { "sendmail", "-bd" }, .ok = 0 },
	{ "unknown mode -bt", { "sendmail", "-bt" }, .ok = 0 },
	{ "bad -od", { "sendmail", "-odx", "root" }, .ok = 0 },
	{ "missing value", { "sendmail", "root", NULL }, 1, SM_MODE_SEND, SM_DELIV_BACKGROUND, 0, 0, NULL, NULL, "root", 1 },
	{ "-f without value", { "sendmail", "-f" }, .ok = 0 },
	{ "two senders", { "sendmail", "-f", "a@x", "-r", "b@x", "c" }, .ok = 0 },
	{ "no recipients", { "sendmail", "-i" }, .ok = 0 },
	{ "-q interval", { "sendmail", "-q15m" }, .ok = 0 },
	{ "-bp with args", { "sendmail", "-bp", "root" }, .ok = 0 },
	{ "-bv nothing", { "sendmail", "-bv" }, .ok = 0 },
	{ "-d", { "sendmail", "-d0.1", "root" }, .ok = 0 },
};

static void
invocations(void **state)
{
	struct sm_opts o;
	char why[256];
	size_t k;
	int argc, r;

	(void)state;
	for (k = 0; k < sizeof(table) / sizeof(table[0]); k++) {
		const struct inv *t = &table[k];

		for (argc = 0; t->argv[argc] != NULL; argc++)
			;
		r = sm_args_parse(argc, (char *const *)t->argv, &o, why, sizeof(why));
		print_message("%s: r=%d why=%s\n", t->who, r, why);
		if (!t->ok) {
			assert_int_equal(r, -1);
			assert_true(why[0] != '\0');
			continue;
		}
		assert_int_equal(r, 0);
		assert_int_equal(o.mode, t->mode);
		assert_int_equal(o.deliv, t->deliv);
		assert_int_equal(o.from_headers, t->t);
		assert_int_equal(o.ignore_dots, t->i);
		if (t->sender != NULL)
			assert_string_equal(o.sender, t->sender);
		else
			assert_null(o.sender);
		if (t->fullname != NULL)
			assert_string_equal(o.fullname, t->fullname);
		assert_int_equal(o.nrcpt, t->nrcpt);
		if (t->rcpt0 != NULL)
			assert_string_equal(o.rcpts[0], t->rcpt0);
	}
}

static void
recipient_after_first_is_never_an_option(void **state)
{
	const char *argv[] = { "sendmail", "root", "-C", "/tmp/evil.conf", "-q" };
	struct sm_opts o;
	char why[256];

	(void)state;
	assert_int_equal(sm_args_parse(5, (char *const *)argv, &o, why, sizeof(why)), 0);
	assert_null(o.config);
	assert_int_equal(o.mode, SM_MODE_SEND);
	assert_int_equal(o.nrcpt, 4);
	assert_string_equal(o.rcpts[1], "-C");
}

static void
config_and_verbose(void **state)
{
	const char *argv[] = { "sendmail", "-v", "-C", "/etc/other.conf", "-q" };
	struct sm_opts o;
	char why[256];

	(void)state;
	assert_int_equal(sm_args_parse(5, (char *const *)argv, &o, why, sizeof(why)), 0);
	assert_string_equal(o.config, "/etc/other.conf");
	assert_int_equal(o.verbose, 1);
	assert_int_equal(o.mode, SM_MODE_RUNQ);
	assert_int_equal(o.force, 1);
}

static void
queue_runner_respects_backoff(void **state)
{
	const char *argv[] = { "sendmail", "--queue-runner" };
	struct sm_opts o;
	char why[256];

	(void)state;
	assert_int_equal(sm_args_parse(2, (char *const *)argv, &o, why, sizeof(why)), 0);
	assert_int_equal(o.mode, SM_MODE_RUNQ);
	assert_int_equal(o.force, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(invocations),
		cmocka_unit_test(recipient_after_first_is_never_an_option),
		cmocka_unit_test(config_and_verbose),
		cmocka_unit_test(queue_runner_respects_backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
