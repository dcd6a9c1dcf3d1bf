/*
 * replies.h: the one table of SMTP replies (Exchange Online's and generic
 * ones) and local failures -> what the queue runner does about them.
 *
 * The SMTP engine (common/smtp.c) only reports a reply; relay.c asks this
 * table what it means for the queue.  The same table prints the REPLIES
 * section of the manual (man/o365-sendmail-replies.7); a unit test checks
 * that the committed page matches it, so the two never drift.
 */
#ifndef O365_SM_REPLIES_H
#define O365_SM_REPLIES_H

#include <stddef.h>
#include <stdio.h>

#include "o365/err.h"

enum sm_reply_action {
	SM_ACT_RETRY,		/* temporary: this message again later, with backoff */
	SM_ACT_HOLD_QUEUE,	/* configuration problem: stop sending everything,
				 * one alert for the admin, retry on a slow schedule */
	SM_ACT_HOLD_MESSAGE,	/* this message cannot go as it is (SendAsDenied):
				 * keep it held until the admin releases it */
	SM_ACT_WAIT_QUOTA,	/* 24 h submission quota: wait for the window */
	SM_ACT_BOUNCE,		/* permanent: fail the message and bounce it once */
};

/* Where in the session a reply came (a rule may be limited to some). */
#define SM_STAGE_CONNECT	0x01	/* greeting, EHLO, STARTTLS, TLS */
#define SM_STAGE_AUTH		0x02	/* AUTH, and getting a token for it */
#define SM_STAGE_MAIL		0x04
#define SM_STAGE_RCPT		0x08
#define SM_STAGE_DATA		0x10	/* DATA and the reply to the final dot */
#define SM_STAGE_ANY		0x1f

struct sm_reply_rule {
	const char	*name;		/* stable id for logs and tests: "sendas-denied" */
	int		 code;		/* 421 exact; 4 or 5 any 4xx / 5xx; 0 a local failure */
	int		 local;		/* code 0: the O365_E_* failure this row is for */
	const char	*enhanced;	/* RFC 3463 code prefix at a "." boundary; NULL any */
	const char	*pattern;	/* case-insensitive substring of the text; NULL any */
	unsigned	 stages;	/* SM_STAGE_* mask the row applies to */
	enum sm_reply_action action;
	const char	*example;	/* a reply this row matches (manual, tests) */
	const char	*advice;	/* what the admin should know or do */
};

/*
 * The row for a server reply: code (e.g. 535), enhanced ("5.7.139", "" or
 * NULL when none), text (the reply text, or the engine's err->why; NULL ok)
 * and stage (one SM_STAGE_* bit).  Rows are tried in table order, the most
 * specific first; the first whose code, enhanced prefix, pattern and stage
 * all match wins.  Never NULL: an unknown 4xx is RETRY, an unknown 5xx is
 * BOUNCE (but a 5xx to the greeting, EHLO or AUTH holds the queue: it is
 * about the session, not the message), anything else (a code outside
 * 400..599, a reply the engine called malformed) is RETRY.
 */
const struct sm_reply_rule *sm_reply_classify(int code, const char *enhanced, const char *text,
	    unsigned stage);

/*
 * The row for a failure the engine reported in err: a server reply when
 * err->reply is 400..599 (as sm_reply_classify with err->enhanced and
 * err->why), else the local row for err->code (NET, TIMEOUT, TLS, PROTO ->
 * RETRY; CONFIG, and AUTH without a reply, i.e. the token endpoint refused
 * or a token was refused again right after a refresh -> HOLD_QUEUE; ...).
 * err NULL or O365_OK: the "unexpected" RETRY row.  Never NULL.
 */
const struct sm_reply_rule *sm_reply_classify_error(const struct o365_error *err, unsigned stage);

/* The whole table (for --help style listings and tests). */
const struct sm_reply_rule *sm_reply_rules(size_t *n_out);

/* "retry", "hold-queue", "hold-message", "wait-quota", "bounce". */
const char	*sm_reply_action_name(enum sm_reply_action a);

/*
 * Seconds until the next try after attempts (>= 1) failures with action:
 * RETRY 60 s doubling to 1 h; HOLD_QUEUE 15 min doubling to 6 h (the
 * default slow schedule: the runner uses flow.hold_retry and
 * flow.hold_retry_max through sm_flow_hold_backoff); WAIT_QUOTA 1 h (the flow state usually knows better:
 * see sm_flow_quota_hit); HOLD_MESSAGE and BOUNCE -1 (no automatic retry).
 */
long long	 sm_reply_retry_delay(enum sm_reply_action a, int attempts);

/*
 * Write the table as man(7) source (a .TS table and one .TP paragraph of
 * advice per row) to fp.  Returns 0, or -1 when a write failed.
 */
int	sm_reply_write_man(FILE *fp);

#endif
