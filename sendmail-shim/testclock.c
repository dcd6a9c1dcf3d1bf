/*
 * testclock.c: O365_TEST_CLOCK_OFFSET and O365_TEST_MINUTE (testclock.h).
 * Linked into o365-sendmail-test only: the installed program has no way to
 * change its clock.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "testclock.h"

struct test_clock {
	long long	offset;		/* seconds ahead */
	long long	epoch;		/* real seconds: where the scaled clock starts */
	long long	minute;		/* real seconds per clock minute; 60: not scaled */
};

static long long
env_ll(const char *name, long long min, long long max, long long def)
{
	const char *v = getenv(name);
	char *end;
	long long n;

	if (v == NULL || *v == '\0')
		return def;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < min || n > max)
		return def;
	return n;
}

static long long
test_now(void *ctx)
{
	const struct test_clock *tc = ctx;
	struct timespec ts;
	long long ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = ((long long)ts.tv_sec - tc->epoch) * 1000 + ts.tv_nsec / 1000000;
	return tc->epoch + tc->offset + ms * 60 / (tc->minute * 1000);
}

static void
test_sleep(void *ctx, long long s)
{
	const struct test_clock *tc = ctx;
	long long ns = s * tc->minute * 1000000000LL / 60;
	struct timespec ts;

	ts.tv_sec = (time_t)(ns / 1000000000LL);
	ts.tv_nsec = (long)(ns % 1000000000LL);
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

const struct sm_clock *
sm_test_clock(void)
{
	static struct test_clock tc;
	static struct sm_clock c = { test_now, test_sleep, &tc };

	tc.offset = env_ll("O365_TEST_CLOCK_OFFSET", -86400LL * 365, 86400LL * 365, 0);
	tc.minute = env_ll("O365_TEST_MINUTE", 1, 60, 60);
	tc.epoch = env_ll("O365_TEST_EPOCH", 0, 1LL << 40, (long long)time(NULL));
	if (tc.offset == 0 && tc.minute == 60)
		return NULL;
	return &c;
}
