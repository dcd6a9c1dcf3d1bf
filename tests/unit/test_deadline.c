/* test_deadline.c: monotonic deadlines; bounds are generous, never exact timings. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <limits.h>
#include <time.h>
#include <cmocka.h>

#include "o365/deadline.h"

static void
zero_is_expired_at_once(void **state)
{
	struct o365_deadline dl;

	(void)state;
	o365_deadline_in(&dl, 0);
	assert_int_equal(o365_deadline_left_ms(&dl), 0);
	assert_true(o365_deadline_expired(&dl));
}

static void
future_deadline_counts_down(void **state)
{
	struct o365_deadline dl;
	int left;

	(void)state;
	o365_deadline_in(&dl, 60000);
	left = o365_deadline_left_ms(&dl);
	assert_true(left > 50000);	/* generous: a loaded machine may stall */
	assert_true(left <= 60000);
	assert_false(o365_deadline_expired(&dl));
}

static void
nanoseconds_carry_into_seconds(void **state)
{
	struct o365_deadline dl;
	unsigned int ms;

	(void)state;
	for (ms = 1; ms < 3000; ms += 137) {
		o365_deadline_in(&dl, ms);
		assert_true(dl.at.tv_nsec >= 0);
		assert_true(dl.at.tv_nsec < 1000000000L);
		assert_true(o365_deadline_left_ms(&dl) <= (int)ms);
	}
}

static void
left_rounds_up_and_caps(void **state)
{
	struct o365_deadline dl;

	(void)state;
	/* 1 ms ahead is never reported as 0 while it has not passed */
	o365_deadline_in(&dl, 1000);
	assert_true(o365_deadline_left_ms(&dl) >= 1);
	/* UINT_MAX ms (~49 days) does not overflow the int result */
	o365_deadline_in(&dl, UINT_MAX);
	assert_int_equal(o365_deadline_left_ms(&dl), INT_MAX);
	assert_false(o365_deadline_expired(&dl));
}

static void
past_deadline_is_zero_not_negative(void **state)
{
	struct o365_deadline dl;

	(void)state;
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &dl.at), 0);
	dl.at.tv_sec -= 5;
	assert_int_equal(o365_deadline_left_ms(&dl), 0);
	assert_true(o365_deadline_expired(&dl));
}

static void
elapsed_measures_from_start(void **state)
{
	struct timespec start;
	long ms;

	(void)state;
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &start), 0);
	ms = o365_elapsed_ms(&start);
	assert_true(ms >= 0);
	assert_true(ms < 10000);
	start.tv_sec -= 3;
	ms = o365_elapsed_ms(&start);
	assert_true(ms >= 3000);
	assert_true(ms < 13000);
	/* borrow across the second boundary */
	start.tv_nsec = start.tv_nsec >= 500000000L ? start.tv_nsec - 500000000L :
	    start.tv_nsec + 500000000L;
	ms = o365_elapsed_ms(&start);
	assert_true(ms >= 2500);
	assert_true(ms < 14000);
}

static void
deadline_really_passes(void **state)
{
	struct o365_deadline dl;
	struct timespec ts = { 0, 5000000L };	/* 5 ms steps, bounded */
	int i;

	(void)state;
	o365_deadline_in(&dl, 20);
	for (i = 0; i < 2000 && !o365_deadline_expired(&dl); i++)
		nanosleep(&ts, NULL);
	assert_true(o365_deadline_expired(&dl));
	assert_int_equal(o365_deadline_left_ms(&dl), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(zero_is_expired_at_once),
		cmocka_unit_test(future_deadline_counts_down),
		cmocka_unit_test(nanoseconds_carry_into_seconds),
		cmocka_unit_test(left_rounds_up_and_caps),
		cmocka_unit_test(past_deadline_is_zero_not_negative),
		cmocka_unit_test(elapsed_measures_from_start),
		cmocka_unit_test(deadline_really_passes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
