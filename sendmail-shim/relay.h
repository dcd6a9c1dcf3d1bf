/* relay.h: the queue runner and bounces. */
#ifndef O365_SM_RELAY_H
#define O365_SM_RELAY_H

#include "config.h"
#include "flow.h"
#include "sm.h"

struct sm_reply_rule;

struct sm_run {
	const struct sm_conf	*conf;
	struct sm_queue		*q;
	const struct sm_policy	*policy;
	const struct o365_log	*lg;
	int			 force;		/* -q: ignore the backoff */
	const char		*only_id;	/* -odi: just this message */
	const struct sm_clock	*clock;		/* NULL: the real one (flow.h; test builds only
						 * set another) */
	int			 no_bounce;	/* --test-send: report a failure, never bounce */
	int			 background;	/* started by -odb: nothing to do when another runner drains */
	/* results */
	int			 sent, deferred, failed;
	int			 held;		/* xoauth2 token refused: queue held, alert logged */
	int			 held_msgs;	/* messages put on hold (SendAsDenied) */
	char			 last_status[600];	/* -odi: what happened to only_id */
	const struct sm_reply_rule *last_rule;	/* the reply table's row for the last
						 * failure (replies.h), NULL if none */
	int			 passes;	/* passes over the queue (draining) */
};

/*
 * Run the queue: take the runner lock (sm_queue_runner_lock; a background
 * run ends at once when another runner holds it), pick up drops (root),
 * read the relay secret (root), drop privileges to the queue user, then
 * deliver every due message over one SMTP session, draining at
 * flow.per_minute: rate waits (up to a minute) are slept through, and the
 * queue is listed again until a pass sends nothing; then the lock is
 * released and the queue looked at once more (a submitter that found the
 * lock held left its message to this run).  Waits for the 24 h budget, the
 * quota or a held queue end the run.  Must start as root.  O365_OK when the run completed (some
 * messages may be deferred), else the error that stopped it.
 */
int	sm_run_queue(struct sm_run *run, struct o365_error *err) O365_MUST_CHECK;

/* Queue one bounce for a message that failed for good (never for a bounce). */
int	sm_bounce(struct sm_queue *q, const struct sm_conf *c, const struct sm_policy *p,
	    const struct sm_env *orig, int msgfd, const char *why, const struct o365_log *lg,
	    struct o365_error *err) O365_MUST_CHECK;

/* Switch to the queue user for good (setgroups, setresgid, setresuid). */
int	sm_drop_privileges(uid_t uid, gid_t gid, struct o365_error *err) O365_MUST_CHECK;

#endif
