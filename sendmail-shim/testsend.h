/*
 * testsend.h: o365-sendmail --test-send ADDR: one test message, sent in
 * the foreground through the queue runner, with the SMTP transcript.
 */
#ifndef O365_SM_TESTSEND_H
#define O365_SM_TESTSEND_H

#include <stdio.h>
#include <sys/types.h>

#include "config.h"
#include "flow.h"
#include "sm.h"

struct sm_test_send {
	const struct sm_conf	*conf;
	const struct sm_policy	*policy;
	const struct o365_log	*lg;		/* the mail log (syslog): attempts, alerts */
	const struct sm_clock	*clock;		/* NULL: the real one */
	uid_t			 quid;		/* the queue user */
	gid_t			 qgid;
	const char		*rcpt;		/* ADDR */
	const char		*fqdn;
};

/*
 * Root only.  Queue a short test message to o->rcpt as root would submit
 * it (From: root@host, rewritten by from.rewrite like any other), then
 * deliver just that message at once as "-odi" does (the runner's own code:
 * flow slots and limits, connect, STARTTLS, AUTH or XOAUTH2, the reply
 * table), printing the whole SMTP transcript to out: AUTH lines and SASL
 * challenges as <secret>, the message as its size, the relay password
 * masked wherever else it might appear.  A test message that was not sent
 * is removed from the queue again (never retried, never bounced).  Then
 * the result: "sent", or the server's reply with the reply table's action
 * and advice.  Runs the queue runner, which drops root for good: call it
 * last.  Returns a sysexits.h code: EX_OK when the server accepted the
 * message, EX_TEMPFAIL for a temporary failure or a wait (rate, quota,
 * busy slots), EX_UNAVAILABLE when the server refused (hold-queue,
 * hold-message, bounce), EX_CONFIG, EX_DATAERR (a bad ADDR), EX_IOERR.
 */
int	sm_test_send(const struct sm_test_send *o, FILE *out);

#endif
