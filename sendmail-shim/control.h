/*
 * control.h: queue control for root (postsuper/postqueue style):
 * --hold, --release, --delete, --retry one message or ALL, --failed, and
 * the queue hold line of mailq.
 */
#ifndef O365_SM_CONTROL_H
#define O365_SM_CONTROL_H

#include <stdio.h>

#include "config.h"
#include "sm.h"

enum sm_ctl_op {
	SM_CTL_HOLD,		/* keep it: no automatic try until released */
	SM_CTL_RELEASE,		/* end a hold (ALL: the queue hold too) */
	SM_CTL_DELETE,		/* remove it, no bounce */
	SM_CTL_RETRY,		/* due now (ALL: the queue hold ends too) */
};

/*
 * Apply op to the message id, or to every message when id is "ALL", in
 * q's queue/ (root).  A message a runner is sending right now is skipped
 * and reported.  One line per message changed to out.  Returns the number
 * changed (>= 0), or an O365_E_* (negative) with err (O365_E_INVAL: no such id).
 */
int	sm_ctl_apply(struct sm_queue *q, const struct sm_conf *c, enum sm_ctl_op op, const char *id,
	    FILE *out, const struct o365_log *lg, struct o365_error *err);

/* "Queue held until ...: reason" when the relay mailbox's queue is held. */
void	sm_ctl_print_hold(const struct sm_queue *q, const struct sm_conf *c, FILE *out);

/* The op's name for messages: "held", "released", "deleted", "scheduled now". */
const char *sm_ctl_done_name(enum sm_ctl_op op);

#endif
