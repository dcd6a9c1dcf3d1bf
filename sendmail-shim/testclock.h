/*
 * testclock.h: the queue runner's clock for tests.  testclock.c is built
 * into o365-sendmail-test only, never into the installed program.
 */
#ifndef O365_SM_TESTCLOCK_H
#define O365_SM_TESTCLOCK_H

#include "flow.h"

/*
 * The clock the environment asks for, or NULL for the real one:
 *   O365_TEST_CLOCK_OFFSET=S  the clock is S seconds ahead (time travel
 *                             through the slow schedule of a held queue)
 *   O365_TEST_MINUTE=N        a minute lasts N real seconds (1..60): from
 *                             O365_TEST_EPOCH (real seconds since the
 *                             epoch, the same in every process of a test;
 *                             default: this process's start) the clock runs
 *                             60/N times as fast, and so do its sleeps
 */
const struct sm_clock *sm_test_clock(void);

#endif
