/* test_log.c: the sink gets formatted lines; DEBUG and traces only with debug. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "o365/log.h"

struct capture {
	int	n;
	int	prio[8];
	char	msg[8][1100];
};

static void
capture_sink(void *ctx, int prio, const char *msg)
{
	struct capture *c = ctx;

	assert_true(c->n < 8);
	c->prio[c->n] = prio;
	assert_true(strlen(msg) < sizeof(c->msg[0]));
	(void)snprintf(c->msg[c->n], sizeof(c->msg[0]), "%s", msg);
	c->n++;
}

static void
lines_reach_the_sink_formatted(void **state)
{
	struct capture c = { 0 };
	struct o365_log lg = { capture_sink, &c, 0 };

	(void)state;
	o365_log(&lg, LOG_ERR, "user=%s result=%s ms=%d", "alice", "auth_err", 41);
	o365_log(&lg, LOG_INFO, "plain");
	assert_int_equal(c.n, 2);
	assert_int_equal(c.prio[0], LOG_ERR);
	assert_string_equal(c.msg[0], "user=alice result=auth_err ms=41");
	assert_int_equal(c.prio[1], LOG_INFO);
	assert_string_equal(c.msg[1], "plain");
}

static void
debug_is_dropped_unless_enabled(void **state)
{
	struct capture c = { 0 };
	struct o365_log lg = { capture_sink, &c, 0 };

	(void)state;
	o365_log(&lg, LOG_DEBUG, "hidden %d", 1);
	o365_log_trace(&lg, "C", "A001 NOOP", 9);
	assert_int_equal(c.n, 0);
	lg.debug = 1;
	o365_log(&lg, LOG_DEBUG, "shown %d", 2);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.prio[0], LOG_DEBUG);
	assert_string_equal(c.msg[0], "shown 2");
}

static void
null_sinks_are_harmless(void **state)
{
	struct o365_log lg = { NULL, NULL, 1 };

	(void)state;
	o365_log(NULL, LOG_ERR, "x");
	o365_log(&lg, LOG_ERR, "x");
	o365_log_trace(NULL, "S", "x", 1);
	o365_log_trace(&lg, "S", "x", 1);
}

static void
trace_is_sanitised_and_capped(void **state)
{
	struct capture c = { 0 };
	struct o365_log lg = { capture_sink, &c, 1 };
	char big[2000];

	(void)state;
	o365_log_trace(&lg, "S", "* OK hi\r\n\x1b[31m", 14);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.prio[0], LOG_DEBUG);
	assert_string_equal(c.msg[0], "S: * OK hi\\x0d\\x0a\\x1b[31m");
	/* len counts, not the NUL */
	o365_log_trace(&lg, "C", "ab\0cd", 5);
	assert_string_equal(c.msg[1], "C: ab\\x00cd");
	memset(big, 'y', sizeof(big));
	o365_log_trace(&lg, "S", big, sizeof(big));
	assert_true(strlen(c.msg[2]) < 600);
	assert_string_equal(c.msg[2] + strlen(c.msg[2]) - 3, "...");
}

static void
long_lines_are_cut_not_overflowed(void **state)
{
	struct capture c = { 0 };
	struct o365_log lg = { capture_sink, &c, 0 };
	char big[3000];

	(void)state;
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	o365_log(&lg, LOG_WARNING, "%s", big);
	assert_int_equal(c.n, 1);
	assert_true(strlen(c.msg[0]) > 500);
	assert_true(strlen(c.msg[0]) < 1024);
}

static void
syslog_sink_copies_to_stderr(void **state)
{
	struct o365_syslog_ctx sc = { LOG_MAIL, 1, "o365-test" };
	char path[] = "/tmp/o365-test-log-XXXXXX";
	char got[256];
	int fd, saved;
	ssize_t n;

	(void)state;
	assert_true((fd = mkstemp(path)) >= 0);
	assert_int_equal(unlink(path), 0);
	fflush(stderr);
	assert_true((saved = dup(STDERR_FILENO)) >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	o365_log_syslog_sink(&sc, LOG_NOTICE, "queued 1 message");
	sc.to_stderr = 0;
	o365_log_syslog_sink(&sc, LOG_NOTICE, "syslog only");
	sc.to_stderr = 1;
	sc.progname = NULL;
	o365_log_syslog_sink(&sc, LOG_ERR, "no name");
	fflush(stderr);
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	n = read(fd, got, sizeof(got) - 1);
	close(fd);
	assert_true(n > 0);
	got[n] = '\0';
	assert_string_equal(got, "o365-test: queued 1 message\no365: no name\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lines_reach_the_sink_formatted),
		cmocka_unit_test(debug_is_dropped_unless_enabled),
		cmocka_unit_test(null_sinks_are_harmless),
		cmocka_unit_test(trace_is_sanitised_and_capped),
		cmocka_unit_test(long_lines_are_cut_not_overflowed),
		cmocka_unit_test(syslog_sink_copies_to_stderr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
