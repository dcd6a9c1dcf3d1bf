/*
 * test_sendmail_flow.c: host-wide flow control (sendmail-shim/flow.c):
 * connection slots across processes (fork) and after a crash, the
 * per-minute rate and the rolling 24 h recipient budget with an injected
 * clock (nothing here waits for real time), quota and queue holds, and the
 * recipient-list splitter.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "flow.h"
#include "spawn.h"

struct shared {			/* MAP_SHARED between the test and its children */
	long long	clock;
	int		holding;	/* slots held right now */
	int		max_holding;
	int		takes;
	int		reserved;
	int		errors;
};

struct fx {
	char		 dir[512];
	char		 state[600];
	struct shared	*sh;
};

static long long
fake_now(void *ctx)
{
	struct shared *sh = ctx;

	return __atomic_load_n(&sh->clock, __ATOMIC_SEQ_CST);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL || o365_test_tmpdir(f->dir, sizeof(f->dir)) != 0)
		return -1;
	snprintf(f->state, sizeof(f->state), "%s/state", f->dir);
	f->sh = mmap(NULL, sizeof(*f->sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	if (f->sh == MAP_FAILED)
		return -1;
	memset(f->sh, 0, sizeof(*f->sh));
	f->sh->clock = 1800000000LL;		/* a multiple of 60 */
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	munmap(f->sh, sizeof(*f->sh));
	o365_test_rmtree(f->dir);
	free(f);
	return 0;
}

static struct sm_flow *
open_flow(struct fx *f, const struct sm_flow_limits *lim)
{
	struct sm_flow *fl = NULL;
	struct o365_error err;

	if (sm_flow_open(f->state, "Relay@Contoso.com", lim, &fl, &err) != O365_OK) {
		print_error("sm_flow_open: %s\n", err.why);
		return NULL;
	}
	sm_flow_set_clock(fl, fake_now, f->sh);
	return fl;
}

static void
limits(struct sm_flow_limits *l, unsigned conns, unsigned per_minute, unsigned day)
{
	sm_flow_limits_default(l);
	l->connections = conns;
	l->per_minute = per_minute;
	l->day_recipients = day;
}

static void
defaults_are_exchange_limits(void **state)
{
	struct sm_flow_limits l;

	(void)state;
	sm_flow_limits_default(&l);
	assert_int_equal(l.connections, 3);
	assert_int_equal(l.per_minute, 30);
	assert_int_equal(l.day_recipients, 10000);
	assert_int_equal(l.max_recipients, 500);
}

static void
bad_limits_are_refused(void **state)
{
	struct fx *f = *state;
	struct sm_flow_limits l;
	struct sm_flow *fl = NULL;
	struct o365_error err;

	sm_flow_limits_default(&l);
	l.connections = 0;
	assert_int_equal(sm_flow_open(f->state, "a@b", &l, &fl, &err), O365_E_CONFIG);
	assert_null(fl);
	sm_flow_limits_default(&l);
	l.per_minute = 0;
	assert_int_equal(sm_flow_open(f->state, "a@b", &l, &fl, &err), O365_E_CONFIG);
	sm_flow_limits_default(&l);
	l.max_recipients = 100000;
	assert_int_equal(sm_flow_open(f->state, "a@b", &l, &fl, &err), O365_E_CONFIG);
	sm_flow_limits_default(&l);
	assert_int_equal(sm_flow_open(f->state, "", &l, &fl, &err), O365_E_INVAL);
	assert_int_equal(sm_flow_open("/proc/nonexistent/state", "a@b", &l, &fl, &err), O365_E_IO);
	assert_null(fl);
}

/* Separate handles are separate runners: the 4th finds every slot busy. */
static void
slots_limit_in_one_process(void **state)
{
	struct fx *f = *state;
	struct sm_flow_limits l;
	struct sm_flow *h[4];
	struct o365_error err;
	int i, slot, seen = 0;

	limits(&l, 3, 30, 10000);
	for (i = 0; i < 4; i++)
		assert_non_null(h[i] = open_flow(f, &l));
	for (i = 0; i < 3; i++) {
		assert_int_equal(sm_flow_slot_take(h[i], &slot, &err), O365_OK);
		assert_true(slot >= 0 && slot < 3);
		assert_false(seen & (1 << slot));	/* each its own */
		seen |= 1 << slot;
		/* taking again returns the held one */
		assert_int_equal(sm_flow_slot_take(h[i], &slot, &err), O365_OK);
		assert_int_equal(slot, sm_flow_slot(h[i]));
	}
	assert_int_equal(sm_flow_slot_take(h[3], &slot, &err), O365_OK);
	assert_int_equal(slot, -1);
	assert_int_equal(sm_flow_slot(h[3]), -1);
	sm_flow_slot_release(h[1]);
	assert_int_equal(sm_flow_slot_take(h[3], &slot, &err), O365_OK);
	assert_true(slot >= 0);
	/* the same mailbox in other case shares the slots */
	{
		struct sm_flow *other = NULL;

		assert_int_equal(sm_flow_open(f->state, "relay@contoso.COM", &l, &other, &err),
		    O365_OK);
		assert_int_equal(sm_flow_slot_take(other, &slot, &err), O365_OK);
		assert_int_equal(slot, -1);
		sm_flow_close(&other);
	}
	for (i = 0; i < 4; i++)
		sm_flow_close(&h[i]);
	assert_null(h[0]);
}

/* A child process: many take/hold/release rounds, counting holders. */
static int
slot_child(struct fx *f, const struct sm_flow_limits *l, int rounds)
{
	struct sm_flow *fl = open_flow(f, l);
	struct o365_error err;
	int i, k, slot, cur, max;

	if (fl == NULL)
		return 1;
	for (i = 0; i < rounds; i++) {
		if (sm_flow_slot_take(fl, &slot, &err) != O365_OK)
			return 2;
		if (slot == -1) {
			sched_yield();
			continue;
		}
		cur = __atomic_add_fetch(&f->sh->holding, 1, __ATOMIC_SEQ_CST);
		__atomic_add_fetch(&f->sh->takes, 1, __ATOMIC_SEQ_CST);
		max = __atomic_load_n(&f->sh->max_holding, __ATOMIC_SEQ_CST);
		while (cur > max && !__atomic_compare_exchange_n(&f->sh->max_holding, &max, cur, 0,
		    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			;
		for (k = 0; k < 3; k++)
			sched_yield();
		__atomic_sub_fetch(&f->sh->holding, 1, __ATOMIC_SEQ_CST);
		sm_flow_slot_release(fl);
	}
	sm_flow_close(&fl);
	return 0;
}

static void
wait_children(pid_t *pids, int n)
{
	int i, st;

	for (i = 0; i < n; i++) {
		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
}

static void
slots_never_exceed_the_limit_across_processes(void **state)
{
	struct fx *f = *state;
	struct sm_flow_limits l;
	pid_t pids[8];
	int i;

	limits(&l, 3, 30, 10000);
	for (i = 0; i < 8; i++) {
		pids[i] = fork();
		assert_true(pids[i] != -1);
		if (pids[i] == 0)
			_exit(slot_child(f, &l, 300));
	}
	wait_children(pids, 8);
	assert_true(f->sh->takes > 0);
	assert_true(f->sh->max_holding >= 1);
	assert_true(f->sh->max_holding <= 3);
	assert_int_equal(f->sh->holding, 0);
}

/* A runner killed while holding a slot frees it: the kernel drops the flock. */
static void
crashed_runner_frees_its_slot(void **state)
{
	struct fx *f = *state;
	struct sm_flow_limits l;
	struct sm_flow *fl;
	struct o365_error err;
	int p[2], slot, st;
	char c;
	pid_t pid;

	limits(&l, 1, 30, 10000);
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		struct sm_flow *child = open_flow(f, &l);

		close(p[0]);
		if (child == NULL || sm_flow_slot_take(child, &slot, &err) != O365_OK || slot != 0)
			_exit(1);
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();	/* holds the slot until killed */
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);		/* the child holds it */
	close(p[0]);
	assert_non_null(fl = open_flow(f, &l));
	assert_int_equal(sm_flow_slot_take(fl, &slot, &err), O365_OK);
	assert_int_equal(slot, -1);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(sm_flow_slot_take(fl, &slot, &err), O365_OK);
	assert_int_equal(slot, 0);
	sm_flow_close(&fl);
}

static long long
reserve(struct sm_flow *fl, unsigned n)
{
	struct o365_error err;
	long long wait = -1;

	assert_int_equal(sm_flow_reserve(fl, n, &wait, &err), O365_OK);
	return wait;
}

static void
rate_limit_per_minute(void **state)
{
	struct fx *f = *state;
	struct sm_flow_limits l;
	struct sm_flow *fl, *other;
	struct o365_error err;
	long long t0 = f->sh->clock, wait;
	int i;

	limits(&l, 3, 30, 10000);
	assert_non_null(fl = open_flow(f, &l));
	assert_non_null(other = open_flow(f, &l));
	for (i = 0; i < 20; i++)
		assert_int_equal(reserve(fl, 1), 0);
	f->sh->clock = t0 + 10;
	for (i = 0; i < 10; i++)
		assert_int_equal(reserve(other, 1), 0);	/* another runner shares the budget */
	/* the 31st within the minute waits until the first is a minute old:
	 * 61 s of whole-second stamps (a send at t0 may have left at t0 + 0.9) */
	assert_int_equal(reserve(fl, 1), 51);
	assert_int_equal(sm_flow_check(other, 1, &wait, &err), O365_OK);
	assert_int_equal(wait, 51);
	f->sh->clock = t0 + 60;
	assert_int_equal(reserve(fl, 1), 1);
	f->sh->clock = t0 + 61;
	/* the first 20 left the window: 20 more fit, then the 10 from t0+10 */
	for (i = 0; i < 20; i++)
		assert_int_equal(reserve(fl, 1), 0);
	assert_int_equal(reserve(fl, 1), 10);
	/* a check never records */
	f->sh->clock = t0 + 71;
	for (i = 0; i < 50; i++) {
		assert_int_equal(sm_flow_check(fl, 1, &wait, &err), O365_OK);
		assert_int_equal(wait, 0);
	}
	for (i = 0; i < 10; i++)
		assert_int_equal(reserve(fl, 1), 0);
	assert_true(reserve(fl, 1) > 0);
	sm_flow_close(&fl);
	sm_flow_close(&other);
}

/* Several processes race for the same minute: exactly per_minute win. */
static void
rate_limit_across_processes(void **state)
{
	struct fx *f = *state;
	struct sm_flow_limits l;
	pid_t pids[4];
	int i;

	limits(&l, 3, 30, 10000);
	for (i = 0; i < 4; i++) {
		pids[i] = fork();
		assert_true(pids[i] != -1);
		if (pids[i] == 0) {
			struct sm_flow *fl = open_flow(f, &l);
			struct o365_error err;
			long long wait;
			int k;

			if (fl == NULL)
				_exit(1);
			for (k = 0; k < 20; k++) {
				if (sm_flow_reserve(fl, 2, &wait, &err) != O365_OK)
					_exit(2);
				if (wait == 0)
					__atomic_add_fetch(&f->sh->reserved, 1, __ATOMIC_SEQ_CST);
				else if (wait != 61)
					_exit(3);
			}
			sm_flow_close(&fl);
			_exit(0);
		}
	}
	wait_children(pids, 4);
	assert_int_equal(f->sh->reserved, 30);
}

static void
day_budget_rolls(void **state)
{
	struct fx *f = *state;
	struct sm_flow_limits l;
	struct sm_flow *fl;
	long long t0 = f->sh->clock, expect;

	limits(&l, 3, 10000, 1000);
	assert_non_null(fl = open_flow(f, &l));
	assert_int_equal(reserve(fl, 400), 0);
	f->sh->clock = t0 + 3600;
	assert_int_equal(reserve(fl, 400), 0);
	f->sh->clock = t0 + 7200;
	assert_int_equal(reserve(fl, 200), 0);		/* exactly the budget */
	/* one more waits until the t0 bucket is a day (and its minute) old */
	expect = t0 + 60 + 86400 - (t0 + 7200);
	assert_int_equal(reserve(fl, 1), expect);
	/* 401 needs the first two buckets gone */
	assert_int_equal(reserve(fl, 401), t0 + 3600 + 60 + 86400 - (t0 + 7200));
	f->sh->clock = t0 + 60 + 86400 - 1;
	assert_int_equal(reserve(fl, 1), 1);
	f->sh->clock = t0 + 60 + 86400;
	assert_int_equal(reserve(fl, 400), 0);		/* the t0 bucket rolled out */
	assert_true(reserve(fl, 1) > 0);
	/* a transaction bigger than the whole budget waits for an empty window */
	f->sh->clock = t0 + 7200 + 60 + 86400;
	assert_int_equal(reserve(fl, 0), 0);		/* only the t0+86460 bucket left */
	assert_true(reserve(fl, 1500) > 0);
	f->sh->clock += 86400;
	assert_int_equal(reserve(fl, 1500), 0);
	sm_flow_close(&fl);
}

/* The server says the quota is gone: wait until our oldest recipients
 * leave the window (or an hour when we recorded none). */
static void
quota_hit_waits_for_the_window(void **state)
{
	struct fx *f = *state;
	struct sm_flow_limits l;
	struct sm_flow *fl, *other;
	struct o365_error err;
	long long t0 = f->sh->clock, until;

	limits(&l, 3, 30, 10000);
	assert_non_null(fl = open_flow(f, &l));
	assert_non_null(other = open_flow(f, &l));
	assert_int_equal(sm_flow_quota_hit(fl, &until, &err), O365_OK);
	assert_int_equal(until, t0 + 3600);
	assert_int_equal(reserve(other, 1), 3600);
	f->sh->clock = t0 + 3600;
	assert_int_equal(reserve(other, 5), 0);
	f->sh->clock = t0 + 3700;
	assert_int_equal(sm_flow_quota_hit(other, &until, &err), O365_OK);
	assert_int_equal(until, t0 + 3600 + 60 + 86400);
	assert_int_equal(reserve(fl, 1), until - (t0 + 3700));
	f->sh->clock = until;
	assert_int_equal(reserve(fl, 1), 0);
	sm_flow_close(&fl);
	sm_flow_close(&other);
}

/* --retry ALL ends a quota wait; only when one is on does it say so */
static void
quota_clear_by_the_admin(void **state)
{
	struct fx *f = *state;
	struct sm_flow_limits l;
	struct sm_flow *fl;
	struct o365_error err;
	long long until;
	int was = -1;

	limits(&l, 3, 30, 10000);
	assert_non_null(fl = open_flow(f, &l));
	assert_int_equal(sm_flow_quota_clear(fl, &was, &err), O365_OK);
	assert_int_equal(was, 0);
	assert_int_equal(sm_flow_quota_hit(fl, &until, &err), O365_OK);
	assert_true(reserve(fl, 1) > 0);
	assert_int_equal(sm_flow_quota_clear(fl, &was, &err), O365_OK);
	assert_int_equal(was, 1);
	assert_int_equal(reserve(fl, 1), 0);
	sm_flow_close(&fl);
}

static void
queue_hold_alerts_once(void **state)
{
	struct fx *f = *state;
	struct sm_flow_limits l;
	struct sm_flow *fl, *other;
	struct o365_error err;
	long long until;
	char why[64];
	int first, was;

	limits(&l, 3, 30, 10000);
	assert_non_null(fl = open_flow(f, &l));
	assert_non_null(other = open_flow(f, &l));
	assert_int_equal(sm_flow_held(other, &until, why, sizeof(why), &err), O365_OK);
	assert_int_equal(until, 0);
	assert_string_equal(why, "");
	assert_int_equal(sm_flow_hold(fl, f->sh->clock + 900,
	    "535 5.7.3 Authentication unsuccessful\r\nInjected: yes", &first, &err), O365_OK);
	assert_int_equal(first, 1);
	/* a second runner hitting the same problem adds no alert */
	assert_int_equal(sm_flow_hold(other, f->sh->clock + 1800, "535 5.7.3 again", &first,
	    &err), O365_OK);
	assert_int_equal(first, 0);
	assert_int_equal(sm_flow_held(fl, &until, why, sizeof(why), &err), O365_OK);
	assert_int_equal(until, f->sh->clock + 1800);
	assert_string_equal(why, "535 5.7.3 again");
	assert_int_equal(sm_flow_hold(other, f->sh->clock + 1800,
	    "535 5.7.3 Authentication unsuccessful\r\nInjected: yes", &first, &err), O365_OK);
	assert_int_equal(sm_flow_held(fl, &until, why, sizeof(why), &err), O365_OK);
	assert_null(strchr(why, '\n'));			/* one line, escaped */
	assert_non_null(strstr(why, "\\x0d\\x0aInjected"));
	/* the hold survives other updates of the state */
	assert_int_equal(reserve(fl, 3), 0);
	assert_int_equal(sm_flow_held(other, &until, why, sizeof(why), &err), O365_OK);
	assert_true(until > 0);
	assert_int_equal(sm_flow_release(other, &was, &err), O365_OK);
	assert_int_equal(was, 1);
	assert_int_equal(sm_flow_release(fl, &was, &err), O365_OK);
	assert_int_equal(was, 0);
	assert_int_equal(sm_flow_held(fl, &until, why, sizeof(why), &err), O365_OK);
	assert_int_equal(until, 0);
	sm_flow_close(&fl);
	sm_flow_close(&other);
}

/* The slow schedule of a held queue: first, doubling to max, shared by
 * every runner; -q (restart) starts over without a new alert; a release
 * forgets it.  And which limit a wait is for. */
static void
hold_backoff_and_wait_reasons(void **state)
{
	struct fx *f = *state;
	struct sm_flow_limits l;
	struct sm_flow *fl, *other;
	struct o365_error err;
	enum sm_flow_wait why;
	long long until, wait, t0 = f->sh->clock;
	int first, was;

	limits(&l, 3, 2, 10000);
	assert_non_null(fl = open_flow(f, &l));
	assert_non_null(other = open_flow(f, &l));
	assert_int_equal(sm_flow_hold_backoff(fl, 900, 3000, 0, "535", &first, &until, &err), O365_OK);
	assert_int_equal(first, 1);
	assert_int_equal(until, t0 + 900);
	assert_int_equal(sm_flow_hold_backoff(other, 900, 3000, 0, "535", &first, &until, &err),
	    O365_OK);
	assert_int_equal(first, 0);
	assert_int_equal(until, t0 + 1800);		/* doubled, by another runner */
	assert_int_equal(sm_flow_hold_backoff(fl, 900, 3000, 0, "535", &first, &until, &err), O365_OK);
	assert_int_equal(until, t0 + 3000);		/* 3600 capped */
	assert_int_equal(sm_flow_hold_backoff(fl, 900, 3000, 0, "535", &first, &until, &err), O365_OK);
	assert_int_equal(until, t0 + 3000);
	assert_int_equal(sm_flow_hold_backoff(fl, 900, 3000, 1, "535", &first, &until, &err), O365_OK);
	assert_int_equal(first, 0);			/* -q: same hold, no alert */
	assert_int_equal(until, t0 + 900);
	assert_int_equal(sm_flow_release(other, &was, &err), O365_OK);
	assert_int_equal(was, 1);
	assert_int_equal(sm_flow_hold_backoff(fl, 900, 3000, 0, "535", &first, &until, &err), O365_OK);
	assert_int_equal(first, 1);			/* a new hold */
	assert_int_equal(until, t0 + 900);
	assert_int_equal(sm_flow_release(fl, &was, &err), O365_OK);
	/* reasons: rate, then the quota */
	assert_int_equal(sm_flow_reserve_why(fl, 1, &wait, &why, &err), O365_OK);
	assert_int_equal(why, SM_FLOW_GO);
	assert_int_equal(sm_flow_reserve_why(fl, 1, &wait, &why, &err), O365_OK);
	assert_int_equal(sm_flow_check_why(other, 1, &wait, &why, &err), O365_OK);
	assert_int_equal(why, SM_FLOW_RATE);
	assert_int_equal(wait, 61);
	assert_int_equal(sm_flow_quota_hit(other, &until, &err), O365_OK);
	assert_int_equal(sm_flow_reserve_why(fl, 1, &wait, &why, &err), O365_OK);
	assert_int_equal(why, SM_FLOW_QUOTA);
	assert_true(wait > 60);
	sm_flow_close(&fl);
	sm_flow_close(&other);
}

/* A damaged or foreign state file is taken as empty, never as a stop. */
static void
damaged_state_is_ignored(void **state)
{
	struct fx *f = *state;
	struct sm_flow_limits l;
	struct sm_flow *fl;
	char path[700];
	FILE *fp;
	int i;

	limits(&l, 3, 2, 10000);
	assert_non_null(fl = open_flow(f, &l));		/* makes the directory */
	snprintf(path, sizeof(path), "%s/relay@contoso.com.flow", f->state);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "garbage\nm 12x\n");
	fclose(fp);
	assert_int_equal(reserve(fl, 1), 0);
	/* our format with bad lines: the good lines count, the rest is skipped */
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "o365-flow 1\nm %lld\nm -5\nd x y\nhold\nquota 1e9\nd %lld 99999999999\n"
	    "unknown line\nm %lld", f->sh->clock, f->sh->clock, f->sh->clock);
	fclose(fp);
	assert_int_equal(reserve(fl, 1), 0);		/* only one send counted */
	assert_int_equal(reserve(fl, 1), 61);		/* per_minute 2 reached */
	/* sends stamped in the future (the clock went back) count as now */
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "o365-flow 1\nm %lld\nm %lld\n", f->sh->clock + 100000, f->sh->clock + 100000);
	fclose(fp);
	assert_int_equal(reserve(fl, 1), 61);
	for (i = 0; i < 2; i++)
		f->sh->clock += 60;
	assert_int_equal(reserve(fl, 1), 0);
	sm_flow_close(&fl);
}

/* The hold reason from the state file reaches root's mailq and the log:
 * whatever the file holds, it comes back printable (no terminal escapes). */
static void
hostile_hold_reason_is_printable(void **state)
{
	struct fx *f = *state;
	struct sm_flow_limits l;
	struct sm_flow *fl;
	struct o365_error err;
	char path[700], reason[512];
	long long until = 0;
	const char *p;
	FILE *fp;

	limits(&l, 3, 2, 10000);
	assert_non_null(fl = open_flow(f, &l));		/* makes the directory */
	snprintf(path, sizeof(path), "%s/relay@contoso.com.flow", f->state);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "o365-flow 1\nhold %lld evil\033]0;owned\007\033[2J\rreason\177\n",
	    f->sh->clock + 900);
	fclose(fp);
	assert_int_equal(sm_flow_held(fl, &until, reason, sizeof(reason), &err), O365_OK);
	assert_int_equal(until, f->sh->clock + 900);
	assert_non_null(strstr(reason, "evil"));
	assert_non_null(strstr(reason, "reason"));
	for (p = reason; *p != '\0'; p++)
		assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
	sm_flow_close(&fl);
}

static void
state_files_are_private(void **state)
{
	struct fx *f = *state;
	struct sm_flow_limits l;
	struct sm_flow *fl;
	struct o365_error err;
	struct stat st;
	char path[700];
	int slot;

	limits(&l, 3, 30, 10000);
	assert_non_null(fl = open_flow(f, &l));
	assert_int_equal(sm_flow_slot_take(fl, &slot, &err), O365_OK);
	assert_int_equal(reserve(fl, 1), 0);
	assert_int_equal(stat(f->state, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/relay@contoso.com.flow", f->state);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 077, 0);
	snprintf(path, sizeof(path), "%s/relay@contoso.com.slot0", f->state);
	assert_int_equal(stat(path, &st), 0);
	sm_flow_close(&fl);
	/* an odd mailbox name cannot leave the directory */
	assert_int_equal(sm_flow_open(f->state, "../../x/y", &l, &fl, &err), O365_OK);
	assert_int_equal(sm_flow_slot_take(fl, &slot, &err), O365_OK);
	snprintf(path, sizeof(path), "%s/%%2e.%%2f..%%2fx%%2fy.slot0", f->state);
	assert_int_equal(stat(path, &st), 0);
	sm_flow_close(&fl);
}

/* --init or the runner (as root) makes state/ for the queue user. */
static void
prepare_dir_for_the_queue_user(void **state)
{
	struct fx *f = *state;
	struct o365_error err;
	struct stat st;
	char link[700];

	if (geteuid() != 0)
		skip();
	assert_int_equal(sm_flow_prepare_dir(f->state, 65534, 65534, &err), O365_OK);
	assert_int_equal(lstat(f->state, &st), 0);
	assert_int_equal(st.st_uid, 65534);
	assert_int_equal(st.st_gid, 65534);
	assert_int_equal(st.st_mode & 07777, 0700);
	/* fixed when wrong, and idempotent */
	assert_int_equal(chmod(f->state, 0755), 0);
	assert_int_equal(chown(f->state, 0, 0), 0);
	assert_int_equal(sm_flow_prepare_dir(f->state, 65534, 65534, &err), O365_OK);
	assert_int_equal(sm_flow_prepare_dir(f->state, 65534, 65534, &err), O365_OK);
	assert_int_equal(lstat(f->state, &st), 0);
	assert_int_equal(st.st_uid, 65534);
	assert_int_equal(st.st_mode & 07777, 0700);
	/* files root makes there belong to the queue user too */
	{
		struct sm_flow_limits l;
		struct sm_flow *fl;
		char path[700];
		int slot;

		limits(&l, 3, 30, 10000);
		assert_non_null(fl = open_flow(f, &l));
		assert_int_equal(sm_flow_slot_take(fl, &slot, &err), O365_OK);
		assert_int_equal(reserve(fl, 1), 0);
		sm_flow_close(&fl);
		snprintf(path, sizeof(path), "%s/relay@contoso.com.flow", f->state);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_uid, 65534);
		snprintf(path, sizeof(path), "%s/relay@contoso.com.lock", f->state);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_uid, 65534);
		snprintf(path, sizeof(path), "%s/relay@contoso.com.slot0", f->state);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_uid, 65534);
	}
	/* a symlink in its place is refused */
	snprintf(link, sizeof(link), "%s/link", f->dir);
	assert_int_equal(symlink(f->state, link), 0);
	assert_int_equal(sm_flow_prepare_dir(link, 65534, 65534, &err), O365_E_IO);
}

static void
split_recipient_lists(void **state)
{
	size_t first, n, i, total;

	(void)state;
	assert_int_equal(sm_flow_batches(0, 500), 0);
	assert_int_equal(sm_flow_batches(1, 500), 1);
	assert_int_equal(sm_flow_batches(500, 500), 1);
	assert_int_equal(sm_flow_batches(501, 500), 2);
	assert_int_equal(sm_flow_batches(1000, 500), 2);
	assert_int_equal(sm_flow_batches(1001, 500), 3);
	assert_int_equal(sm_flow_batches(7, 0), 1);
	sm_flow_batch(501, 500, 0, &first, &n);
	assert_int_equal(first, 0);
	assert_int_equal(n, 500);
	sm_flow_batch(501, 500, 1, &first, &n);
	assert_int_equal(first, 500);
	assert_int_equal(n, 1);
	sm_flow_batch(501, 500, 2, &first, &n);
	assert_int_equal(n, 0);
	sm_flow_batch(7, 0, 0, &first, &n);
	assert_int_equal(first, 0);
	assert_int_equal(n, 7);
	/* every recipient exactly once, in order */
	total = 0;
	for (i = 0; i < sm_flow_batches(1234, 100); i++) {
		sm_flow_batch(1234, 100, i, &first, &n);
		assert_int_equal(first, total);
		assert_true(n >= 1 && n <= 100);
		total += n;
	}
	assert_int_equal(total, 1234);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults_are_exchange_limits),
		cmocka_unit_test_setup_teardown(bad_limits_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(slots_limit_in_one_process, setup, teardown),
		cmocka_unit_test_setup_teardown(slots_never_exceed_the_limit_across_processes,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(crashed_runner_frees_its_slot, setup, teardown),
		cmocka_unit_test_setup_teardown(rate_limit_per_minute, setup, teardown),
		cmocka_unit_test_setup_teardown(rate_limit_across_processes, setup, teardown),
		cmocka_unit_test_setup_teardown(day_budget_rolls, setup, teardown),
		cmocka_unit_test_setup_teardown(quota_hit_waits_for_the_window, setup, teardown),
		cmocka_unit_test_setup_teardown(quota_clear_by_the_admin, setup, teardown),
		cmocka_unit_test_setup_teardown(queue_hold_alerts_once, setup, teardown),
		cmocka_unit_test_setup_teardown(hold_backoff_and_wait_reasons, setup, teardown),
		cmocka_unit_test_setup_teardown(damaged_state_is_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(hostile_hold_reason_is_printable, setup, teardown),
		cmocka_unit_test_setup_teardown(state_files_are_private, setup, teardown),
		cmocka_unit_test_setup_teardown(prepare_dir_for_the_queue_user, setup, teardown),
		cmocka_unit_test(split_recipient_lists),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
