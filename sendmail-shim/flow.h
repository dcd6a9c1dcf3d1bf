/*
 * flow.h: host-wide flow control per relay mailbox, shared by every queue
 * runner process on the host (Exchange Online's limits per mailbox: 3
 * concurrent connections, 30 messages a minute, 10,000 recipients per
 * rolling 24 hours, 500 recipients per message).
 *
 * State lives in a directory (<queue.dir>/state/) as small files named
 * after the mailbox:
 *   <mailbox>.slot<i>  one per connection slot; a runner holds a slot while
 *                      it has a session open, as a flock() on the file: a
 *                      runner that crashes frees its slot automatically
 *   <mailbox>.lock     flock()ed while the state file is read and replaced
 *   <mailbox>.flow     text: sends in the last minute, recipients per minute
 *                      bucket over the last 24 hours, the quota and queue
 *                      holds; replaced atomically (temp file + rename)
 * No check here sleeps: each says how long to wait and the runner sleeps
 * (sm_clock_sleep) or defers.  The state is advisory: after a power loss the last
 * counts may be lost (never the queue).
 */
#ifndef O365_SM_FLOW_H
#define O365_SM_FLOW_H

#include <stddef.h>
#include <sys/types.h>

#include "o365/err.h"

struct sm_flow_limits {
	unsigned	connections;	/* concurrent SMTP sessions (3; 1..64) */
	unsigned	per_minute;	/* messages per rolling minute (30; 1..10000); the
					 * state counts whole seconds, so 61 s of stamps */
	unsigned	day_recipients;	/* recipients per rolling 24 h (10000; 1..10000000) */
	unsigned	max_recipients;	/* recipients per transaction (500; 1..SM_MAX_RCPTS) */
};

#define SM_FLOW_CONNECTIONS	3
#define SM_FLOW_PER_MINUTE	30
#define SM_FLOW_DAY_RECIPIENTS	10000
#define SM_FLOW_MAX_RECIPIENTS	500
#define SM_FLOW_WINDOW		86400	/* seconds in the recipient window */
/* The rate window: Exchange counts 60 s of real time, the state whole
 * seconds (a send stamped t went out in [t, t + 1)): one second more keeps
 * per_minute + 1 sends out of any real minute.  So a per_minute wait lasts
 * up to this long (SM_FLOW_RATE). */
#define SM_FLOW_RATE_WINDOW	61
#define SM_FLOW_HOLD_RETRY	900	/* a held queue: first retry after 15 min, */
#define SM_FLOW_HOLD_RETRY_MAX	21600	/* doubling up to 6 h (flow.hold_retry*) */

/* Exchange Online's defaults. */
void	sm_flow_limits_default(struct sm_flow_limits *l);

struct sm_flow;

/*
 * Make dir (0700) owned by uid:gid, or fix the owner and mode of what is
 * there (root, from --init or before the runner drops privileges; the
 * queue directory itself is root's).  Refuses a symlink.  Idempotent.
 * O365_E_IO.
 */
int	sm_flow_prepare_dir(const char *dir, uid_t uid, gid_t gid,
	    struct o365_error *err) O365_MUST_CHECK;

/*
 * Open the flow state of mailbox (auth.user; case-insensitive) in dir,
 * creating dir (0700) when missing.  lim is copied.  O365_E_CONFIG for a
 * limit out of range, O365_E_INVAL for an empty mailbox, O365_E_IO when dir
 * cannot be made or opened.  Free with sm_flow_close.
 */
int	sm_flow_open(const char *dir, const char *mailbox, const struct sm_flow_limits *lim,
	    struct sm_flow **out, struct o365_error *err) O365_MUST_CHECK;

/* Release a held slot, close and free; *fp = NULL.  NULL-safe. */
void	sm_flow_close(struct sm_flow **fp);

/* Tests: the clock in seconds since the epoch (default time(NULL)). */
void	sm_flow_set_clock(struct sm_flow *f, long long (*now)(void *ctx), void *ctx);

/*
 * The queue runner's clock (relay.h's struct sm_run): the flow state, the
 * queue's Next-Try times and the runner's sleeps all follow it.  NULL
 * members mean the real clock (time(NULL), nanosleep).  Only test builds
 * (o365-sendmail-test) install another one: shifted or running faster.
 */
struct sm_clock {
	long long	(*now)(void *ctx);		/* seconds since the epoch */
	void		(*sleep)(void *ctx, long long s);	/* s seconds of this clock */
	void		*ctx;
};

long long	sm_clock_now(const struct sm_clock *c);	/* c may be NULL */
void		sm_clock_sleep(const struct sm_clock *c, long long s);

/*
 * Take one of the lim.connections slots without waiting: O365_OK with
 * *slot_out the slot number, or -1 when every slot is held (by this or any
 * other process: do not connect, defer).  Taking again while holding one
 * returns the held slot.  O365_E_IO when a slot file cannot be opened.
 */
int	sm_flow_slot_take(struct sm_flow *f, int *slot_out, struct o365_error *err) O365_MUST_CHECK;

/* Give the held slot back (after QUIT).  NULL-safe; nothing when none held. */
void	sm_flow_slot_release(struct sm_flow *f);

/* The held slot, or -1. */
int	sm_flow_slot(const struct sm_flow *f);

/*
 * May one message to nrcpt recipients (one transaction) go now?  Under the
 * lock, atomically across processes: when it fits the per-minute rate, the
 * 24 h recipient budget and no quota wait is on, record it and set *wait_out
 * to 0; else record nothing and set *wait_out to the seconds (>= 1) until it
 * would fit.  A transaction larger than the whole budget goes only when the
 * window is empty.  O365_E_IO for an unusable state file (a malformed one is
 * taken as empty).
 */
int	sm_flow_reserve(struct sm_flow *f, unsigned nrcpt, long long *wait_out,
	    struct o365_error *err) O365_MUST_CHECK;

/* What a wait is for (sm_flow_reserve_why): the longest of them. */
enum sm_flow_wait {
	SM_FLOW_GO,		/* no wait */
	SM_FLOW_RATE,		/* per_minute: at most SM_FLOW_RATE_WINDOW s */
	SM_FLOW_DAY,		/* the 24 h recipient budget */
	SM_FLOW_QUOTA,		/* the server's quota reply (sm_flow_quota_hit) */
};

/* sm_flow_reserve, and *why_out says which limit the wait is for. */
int	sm_flow_reserve_why(struct sm_flow *f, unsigned nrcpt, long long *wait_out,
	    enum sm_flow_wait *why_out, struct o365_error *err) O365_MUST_CHECK;

/* As sm_flow_reserve_why but never records anything (the runner's pacing). */
int	sm_flow_check_why(struct sm_flow *f, unsigned nrcpt, long long *wait_out,
	    enum sm_flow_wait *why_out, struct o365_error *err) O365_MUST_CHECK;

/* As sm_flow_reserve but never records anything (mailq, the runner's plan). */
int	sm_flow_check(struct sm_flow *f, unsigned nrcpt, long long *wait_out,
	    struct o365_error *err) O365_MUST_CHECK;

/*
 * The server said the 24 h quota is used up (wait-quota): no transaction
 * may go until the oldest recorded recipients leave the window, or for an
 * hour when none are recorded.  *until_out (may be NULL) gets that time.
 */
int	sm_flow_quota_hit(struct sm_flow *f, long long *until_out,
	    struct o365_error *err) O365_MUST_CHECK;

/* End a quota wait early (the admin says the quota is back, --retry ALL).
 * *was_out (may be NULL) says whether one was on. */
int	sm_flow_quota_clear(struct sm_flow *f, int *was_out, struct o365_error *err) O365_MUST_CHECK;

/*
 * Hold the whole queue (hold-queue) until the given time, with a reason for
 * mailq and the log (sanitised, capped).  *first_out (may be NULL) is 1 when
 * the queue was not held before: only then log the alert, so the admin gets
 * one alert and not one per message or runner.
 */
int	sm_flow_hold(struct sm_flow *f, long long until, const char *reason, int *first_out,
	    struct o365_error *err) O365_MUST_CHECK;

/*
 * The slow schedule of a held queue: hold it (as sm_flow_hold) until now +
 * first seconds for the first try of a hold, doubled for every further
 * failed try of the same hold up to max (15 min doubling to 6 h by
 * default).  restart: the admin forced this try (-q): the schedule starts
 * over at first, but it is still the same hold (no second alert).
 * *first_out (may be NULL): a new hold, log the alert; *until_out (may be
 * NULL): the next try.  The count of tries lives in the state file.
 */
int	sm_flow_hold_backoff(struct sm_flow *f, long long first, long long max, int restart,
	    const char *reason, int *first_out, long long *until_out,
	    struct o365_error *err) O365_MUST_CHECK;

/* The hold: *until_out 0 when the queue is not held, else when the next
 * try is due (in the past: try now); reason gets the reason ("" if none). */
int	sm_flow_held(struct sm_flow *f, long long *until_out, char *reason, size_t size,
	    struct o365_error *err) O365_MUST_CHECK;

/* End the hold (a session authenticated, or the admin released the queue).
 * *was_held_out (may be NULL) says whether there was one (log "resumed"). */
int	sm_flow_release(struct sm_flow *f, int *was_held_out, struct o365_error *err) O365_MUST_CHECK;

/*
 * Transactions for nrcpt recipients at most max (0: no limit) each:
 * sm_flow_batches gives how many, sm_flow_batch the first index and count
 * of batch i (i < that number), in order, all of size max but the last.
 */
size_t	sm_flow_batches(size_t nrcpt, size_t max);
void	sm_flow_batch(size_t nrcpt, size_t max, size_t i, size_t *first_out, size_t *n_out);

#endif
