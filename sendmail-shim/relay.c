/*
 * relay.c: the queue runner.  Policy lives here: the SMTP engine reports,
 * this file decides retry, fail or bounce.
 *
 *   TEMP, NET, TIMEOUT, TLS, PROTO, AUTH  retried with backoff until
 *                                         queue.max_age, then failed + bounced
 *   PERM (5xx, SendAsDenied included)     failed/ + one bounce
 *
 * One SMTP session carries every due message (RSET between them).  A
 * connection-level failure ends the run; the remaining messages stay queued
 * untouched.
 *
 * Draining under flow.per_minute: a rate wait (at most 61 s) is slept
 * through.  On a wait up to SM_KEEP_OPEN the session stays open, with a NOOP
 * every SM_NOOP_EVERY seconds (Exchange Online drops idle sessions); a
 * longer one ends the session politely (QUIT, the connection slot is kept)
 * and the next message opens a new one.  Waits for the 24 h recipient
 * budget, the quota or a held queue end the run: the timer comes back.
 * The queue is listed again after each pass that sent something (for what
 * other runners left), so a backlog drains in one run at the configured
 * rate, together with what is submitted meanwhile (a root submitter that
 * finds the runner lock held starts no runner of its own); the run's own
 * reports wait for the next run.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "o365/deadline.h"
#include "o365/sasl.h"
#include "o365/secret.h"
#include "o365/smtp.h"
#include "o365/tls.h"
#include "flow.h"
#include "relay.h"
#include "replies.h"
#include "xoauth.h"


int
sm_drop_privileges(uid_t uid, gid_t gid, struct o365_error *err)
{
	if (getuid() == uid && geteuid() == uid)
		return O365_OK;
	if (setgroups(1, &gid) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1)
		return o365_error_set(err, O365_E_IO, "cannot switch to the queue user: %s",
		    strerror(errno));
	if (setuid(0) != -1)	/* must be gone for good */
		return o365_error_set(err, O365_E_IO, "privileges could be regained");
	return O365_OK;
}

#define SM_MAX_SLEEP	SM_FLOW_RATE_WINDOW	/* longest wait slept through: a per_minute wait */
#define SM_KEEP_OPEN	30	/* longer waits QUIT and reconnect after */
#define SM_NOOP_EVERY	15	/* while waiting on an open session, a NOOP this often */
#define SM_MAX_PASSES	1000	/* passes over the queue in one run (a bound) */

struct session {
	struct o365_smtp	*s;
	struct o365_tls_opts	 tls;
	struct o365_smtp_opts	 so;
	struct sm_flow		*flow;		/* host-wide limits of the relay mailbox */
	struct sm_flow_limits	 lim;
	int			 mech;
	int			 need_rset;	/* a transaction completed: RSET before the next */
	int			 stop;		/* leave the rest of the queue for a later run */
	char			 down[1200];	/* why no session could be opened in this run */
	struct sm_xoauth	*xo;		/* auth.mechanism "xoauth2" */
	char			 held[1200];	/* the token was refused for good: the alert */
	int			 rate_logged;	/* "draining at per_minute" said once */
};

static long long
run_time(const struct sm_run *run)
{
	return sm_clock_now(run->clock);
}

/* A one-line record of one attempt for syslog (never a secret). */
static void
log_attempt(const struct sm_run *run, const struct sm_env *e, const char *status,
    const char *reply)
{
	char rc[1024], clean[512];
	size_t i, o = 0;
	int n;

	rc[0] = '\0';
	for (i = 0; i < e->rcpts.n && o < sizeof(rc); i++) {
		n = snprintf(rc + o, sizeof(rc) - o, "%s%s", i ? "," : "", e->rcpts.v[i].addr);
		if (n < 0 || (size_t)n >= sizeof(rc) - o)
			break;
		o += (size_t)n;
	}
	o365_sanitize(clean, sizeof(clean), reply, strlen(reply));
	o365_log(run->lg, LOG_INFO, "%s: uid=%u user=%s sender=<%s> rcpts=%s size=%lld relay=%s:%d "
	    "delay=%llds attempt=%d status=%s reply=\"%s\"", e->id, (unsigned)e->uid, e->user,
	    e->sender, rc, (long long)e->size, run->conf->smtp_host, run->conf->smtp_port,
	    run_time(run) - e->created, e->attempts, status, clean);
}

static int
session_connect(struct sm_run *run, struct session *ss, const struct o365_deadline *dl,
    struct o365_error *err)
{
	int r;

	if ((r = o365_smtp_connect(&ss->so, dl, run->lg, &ss->s, err)) != O365_OK)
		return r;
	if (!(o365_smtp_caps(ss->s)->auth & (unsigned)ss->mech)) {
		r = o365_error_set(err, O365_E_AUTH, "the server does not offer AUTH %s",
		    o365_sasl_mech_name(ss->mech));
		o365_smtp_quit(&ss->s, dl);
		return r;
	}
	return O365_OK;
}

/*
 * XOAUTH2: a refused token gets one forced refresh and one retry on a new
 * connection; refused again (or the token endpoint wants the admin) the
 * queue is held: ss->held is the one LOG_ALERT line.
 */
static int
session_xoauth(struct sm_run *run, struct session *ss, struct o365_deadline *dl,
    struct o365_error *err)
{
	struct o365_oauth_error oerr;
	int r, fromep = 0;

	r = sm_xoauth_auth(ss->xo, ss->s, 0, dl, run->lg, &fromep, &oerr, err);
	if (r != O365_OK && !fromep && sm_xoauth_refused(err)) {
		o365_log(run->lg, LOG_NOTICE, "xoauth2: %s: token refused (%d %s): refreshing it once",
		    run->conf->auth_user, err->reply, err->enhanced);
		o365_smtp_quit(&ss->s, dl);
		o365_deadline_in(dl, (unsigned)run->conf->smtp_timeout * 1000u);
		if ((r = session_connect(run, ss, dl, err)) != O365_OK)
			return r;
		r = sm_xoauth_auth(ss->xo, ss->s, 1, dl, run->lg, &fromep, &oerr, err);
	}
	if (r == O365_OK)
		return O365_OK;
	if (fromep ? sm_xoauth_needs_admin(r) : sm_xoauth_refused(err)) {
		/* the alert: logged by deliver(), once per hold */
		sm_xoauth_alert_text(ss->xo, fromep, r, &oerr, err, ss->held, sizeof(ss->held));
	} else if (fromep) {
		r = o365_error_set(err, r, "token endpoint: %s", err->why);
	}
	o365_smtp_quit(&ss->s, dl);
	return r;
}

/* Connect and authenticate; *stage says where a failure came. */
static int
session_open(struct sm_run *run, struct session *ss, const struct o365_secret *pw,
    unsigned *stage, struct o365_error *err)
{
	struct o365_deadline dl;
	int r;

	*stage = SM_STAGE_CONNECT;
	o365_deadline_in(&dl, (unsigned)run->conf->smtp_timeout * 1000u);
	if ((r = session_connect(run, ss, &dl, err)) != O365_OK) {
		if (r == O365_E_AUTH)
			*stage = SM_STAGE_AUTH;	/* AUTH not offered */
		return r;
	}
	*stage = SM_STAGE_AUTH;
	if (ss->xo != NULL)
		return session_xoauth(run, ss, &dl, err);
	if ((r = o365_smtp_auth(ss->s, ss->mech, run->conf->auth_user, pw->data, pw->len, &dl,
	    err)) != O365_OK) {
		o365_smtp_quit(&ss->s, &dl);
		return r;
	}
	return O365_OK;
}

static int
has8(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

static void
save_env(struct sm_run *run, const struct sm_env *e)
{
	struct o365_error err;

	o365_error_clear(&err);
	if (sm_queue_write_env(run->q->qfd, e, run->q->quid, run->q->qgid, &err) != O365_OK)
		o365_log(run->lg, LOG_ERR, "%s: cannot record the attempt: %s", e->id, err.why);
}

/* Copy prefix + src into dst, cut to fit with "..." at the end: reply texts
 * are capped for the envelope and the status line on purpose. */
static void
copy_capped(char *dst, size_t size, const char *prefix, const char *src)
{
	int n = snprintf(dst, size, "%s%s", prefix, src);

	if (n >= 0 && (size_t)n >= size && size > 4)
		memcpy(dst + size - 4, "...", 4);
}

/* Record a temporary failure (action RETRY); fail and bounce once too old. */
static void
defer(struct sm_run *run, struct sm_env *e, int msgfd, const char *why)
{
	struct o365_error err;
	long long now = run_time(run);

	o365_error_clear(&err);
	copy_capped(e->last_error, sizeof(e->last_error), "", why);
	if (now - e->created >= run->conf->queue_max_age) {
		log_attempt(run, e, "expired", why);
		if (sm_queue_fail(run->q, e->id, &err) != O365_OK)
			o365_log(run->lg, LOG_ERR, "%s: %s", e->id, err.why);
		else if (!run->no_bounce && sm_bounce(run->q, run->conf, run->policy, e, msgfd, why, run->lg, &err) != O365_OK)
			o365_log(run->lg, LOG_ERR, "%s: no bounce: %s", e->id, err.why);
		run->failed++;
		copy_capped(run->last_status, sizeof(run->last_status), "expired: ", why);
		return;
	}
	e->next_try = now + sm_reply_retry_delay(SM_ACT_RETRY, e->attempts > 0 ? e->attempts : 1);
	log_attempt(run, e, "deferred", why);
	save_env(run, e);
	run->deferred++;
	copy_capped(run->last_status, sizeof(run->last_status), "deferred: ", why);
}

/* Keep a message for later without counting an attempt and without expiry:
 * it waits for the flow limits, the quota or a held queue, not for a fault
 * of its own. */
static void
postpone(struct sm_run *run, struct sm_env *e, long long until, const char *status,
    const char *why)
{
	if (why != NULL)
		copy_capped(e->last_error, sizeof(e->last_error), "", why);
	e->next_try = until;
	log_attempt(run, e, status, why != NULL ? why : status);
	save_env(run, e);
	run->deferred++;
	copy_capped(run->last_status, sizeof(run->last_status), "deferred: ",
	    why != NULL ? why : status);
}

static void
fail(struct sm_run *run, struct sm_env *e, int msgfd, const char *why)
{
	struct o365_error err;

	o365_error_clear(&err);
	copy_capped(e->last_error, sizeof(e->last_error), "", why);
	log_attempt(run, e, "failed", why);
	save_env(run, e);
	if (sm_queue_fail(run->q, e->id, &err) != O365_OK) {
		o365_log(run->lg, LOG_ERR, "%s: %s", e->id, err.why);
		return;
	}
	if (!run->no_bounce && sm_bounce(run->q, run->conf, run->policy, e, msgfd, why, run->lg, &err) != O365_OK)
		o365_log(run->lg, LOG_ERR, "%s: no bounce: %s", e->id, err.why);
	run->failed++;
	copy_capped(run->last_status, sizeof(run->last_status), "failed: ", why);
}

/*
 * Record the hold on the slow schedule (flow.hold_retry doubling to
 * flow.hold_retry_max; an admin's -q starts it over).  1 when this is a new
 * hold: only then does the caller log the alert.
 */
static int
hold_record(struct sm_run *run, struct session *ss, const char *why, long long *until_out)
{
	struct o365_error err;
	char reason[700];
	int first = 0;

	o365_error_clear(&err);
	*until_out = run_time(run) + run->conf->flow_hold_retry;
	copy_capped(reason, sizeof(reason), "", why);
	if (sm_flow_hold_backoff(ss->flow, run->conf->flow_hold_retry, run->conf->flow_hold_retry_max,
	    run->force, reason, &first, until_out, &err) != O365_OK) {
		o365_log(run->lg, LOG_ERR, "cannot record the queue hold: %s", err.why);
		first = 1;	/* better a second alert than none */
	}
	return first;
}

/* hold-queue: stop sending everything; one alert for the admin. */
static void
hold_queue(struct sm_run *run, struct session *ss, const struct sm_reply_rule *rule,
    const char *why)
{
	long long until;

	ss->stop = 1;
	if (hold_record(run, ss, why, &until))
		o365_log(run->lg, LOG_ALERT, "queue held (%s), next try in %llds: %s; %s", rule->name,
		    until - run_time(run), why, rule->advice);
	else
		o365_log(run->lg, LOG_NOTICE, "queue still held (%s), next try in %llds: %s", rule->name,
		    until - run_time(run), why);
	copy_capped(run->last_status, sizeof(run->last_status), "queued, the queue is held: ", why);
}

static int
is_session_error(int r)
{
	return r == O365_E_NET || r == O365_E_TIMEOUT || r == O365_E_TLS || r == O365_E_PROTO;
}

static void
reply_text(char *dst, size_t size, const struct o365_error *err)
{
	if (err->reply > 0)
		snprintf(dst, size, "%d %s%s%s", err->reply, err->enhanced, err->enhanced[0] ? " " : "",
		    err->why);
	else
		snprintf(dst, size, "%s: %s", o365_err_name(err->code), err->why);
}

/* Apply the action of rule to the whole (remaining) message. */
static void
act(struct sm_run *run, struct session *ss, struct sm_env *e, int msgfd,
    const struct sm_reply_rule *rule, const char *why)
{
	struct o365_error err;
	long long until = 0;

	o365_error_clear(&err);
	run->last_rule = rule;
	switch (rule->action) {
	case SM_ACT_RETRY:
		defer(run, e, msgfd, why);
		break;
	case SM_ACT_HOLD_QUEUE:
		if (e->attempts > 0)
			e->attempts--;	/* not this message's fault */
		hold_queue(run, ss, rule, why);
		postpone(run, e, e->next_try, "queue-held", why);
		break;
	case SM_ACT_HOLD_MESSAGE:
		e->held = 1;
		copy_capped(e->last_error, sizeof(e->last_error), "", why);
		log_attempt(run, e, "held", why);
		o365_log(run->lg, LOG_WARNING, "%s: held (%s): %s", e->id, rule->name, rule->advice);
		save_env(run, e);
		run->held_msgs++;
		copy_capped(run->last_status, sizeof(run->last_status), "held: ", why);
		break;
	case SM_ACT_WAIT_QUOTA:
		if (e->attempts > 0)
			e->attempts--;
		if (sm_flow_quota_hit(ss->flow, &until, &err) != O365_OK) {
			o365_log(run->lg, LOG_ERR, "cannot record the quota: %s", err.why);
			until = run_time(run) + sm_reply_retry_delay(SM_ACT_WAIT_QUOTA, 1);
		}
		o365_log(run->lg, LOG_WARNING, "submission quota reached (%s): mail waits until %lld; %s",
		    rule->name, until, rule->advice);
		ss->stop = 1;
		postpone(run, e, until, "quota-wait", why);
		break;
	case SM_ACT_BOUNCE:
	default:
		fail(run, e, msgfd, why);
		break;
	}
}

/*
 * Sleep through a rate wait: the session stays open (NOOP every
 * SM_NOOP_EVERY s) when the wait is short, else it is ended politely now
 * (QUIT; the slot stays ours) and deliver() opens a new one after.
 */
static void
idle(struct sm_run *run, struct session *ss, long long wait, int may_close)
{
	struct o365_deadline dl;
	struct o365_error err;
	long long step;

	if (may_close && ss->s != NULL && wait > SM_KEEP_OPEN) {
		o365_log(run->lg, LOG_DEBUG, "rate wait of %llds: closing the session meanwhile", wait);
		o365_deadline_in(&dl, 2000);
		o365_smtp_quit(&ss->s, &dl);
		ss->need_rset = 0;
	}
	while (wait > 0) {
		step = wait < SM_NOOP_EVERY ? wait : SM_NOOP_EVERY;
		sm_clock_sleep(run->clock, step);
		wait -= step;
		if (wait <= 0 || ss->s == NULL)
			continue;
		o365_error_clear(&err);
		o365_deadline_in(&dl, (unsigned)run->conf->smtp_timeout * 1000u);
		if (o365_smtp_noop(ss->s, &dl, &err) != O365_OK) {
			o365_log(run->lg, LOG_INFO, "session lost while waiting: %s", err.why);
			if (!may_close)
				break;	/* the transaction fails on it and is retried */
			/* between messages: a new session for the next one */
			o365_deadline_in(&dl, 1000);
			o365_smtp_quit(&ss->s, &dl);
			ss->need_rset = 0;
		}
	}
}

/* Before a message (between messages): sleep through a rate wait; the
 * session may be closed meanwhile (deliver() opens a new one). */
static void
pace(struct sm_run *run, struct session *ss, unsigned n)
{
	struct o365_error err;
	enum sm_flow_wait fw = SM_FLOW_GO;
	long long wait = 0;
	int i;

	if (run->only_id != NULL)
		return;
	for (i = 0; i < 10; i++) {	/* other runners may take the window first */
		o365_error_clear(&err);
		if (sm_flow_check_why(ss->flow, n, &wait, &fw, &err) != O365_OK || wait <= 0 ||
		    fw != SM_FLOW_RATE || wait > SM_MAX_SLEEP)
			return;		/* reserve() says what it is */
		if (!ss->rate_logged) {
			o365_log(run->lg, LOG_INFO, "draining at flow.per_minute = %u messages a minute",
			    ss->lim.per_minute);
			ss->rate_logged = 1;
		}
		idle(run, ss, wait, 1);
	}
}

/*
 * Wait until the flow limits let a transaction to n recipients go: 1 when
 * reserved, 0 when the wait is not for the rate or -odi asked for one
 * message (the message is postponed and the run ends).  Rate waits are
 * slept through on the open session (NOOPs only, it is not closed here).
 */
static int
reserve(struct sm_run *run, struct session *ss, struct sm_env *e, unsigned n)
{
	struct o365_error err;
	enum sm_flow_wait fw = SM_FLOW_GO;
	long long wait = 0;
	char why[160];

	for (;;) {
		o365_error_clear(&err);
		if (sm_flow_reserve_why(ss->flow, n, &wait, &fw, &err) != O365_OK) {
			/* advisory state: do not stop the mail for it */
			o365_log(run->lg, LOG_ERR, "flow state: %s", err.why);
			return 1;
		}
		if (wait <= 0)
			return 1;
		if (fw != SM_FLOW_RATE || wait > SM_MAX_SLEEP || run->only_id != NULL)
			break;
		idle(run, ss, wait, 0);
	}
	snprintf(why, sizeof(why), "waiting %llds for %s", wait,
	    fw == SM_FLOW_QUOTA ? "the submission quota" : fw == SM_FLOW_DAY ?
	    "the 24 h recipient budget (flow.day_recipients)" : "flow.per_minute");
	ss->stop = 1;
	postpone(run, e, run_time(run) + wait, "waiting", why);
	return 0;
}

static int
addrs_append(struct sm_addrs *to, const struct sm_addrs *from, size_t first, size_t n)
{
	size_t i;
	int r;

	for (i = first; i < first + n && i < from->n; i++)
		if ((r = sm_addrs_add(to, from->v[i].addr, NULL)) != O365_OK)
			return r;
	return O365_OK;
}

/*
 * One transaction for the first n recipients of e.  Returns O365_OK when the
 * message went to some of them (*later gets the temporarily refused ones,
 * *bad the refused for good), else the failure (err, *stage).
 */
static int
transaction(struct sm_run *run, struct session *ss, struct sm_env *e, int msgfd, size_t n,
    int rset, struct sm_addrs *later, struct sm_addrs *bad, char *badwhy, size_t badsz, unsigned *stage,
    struct o365_error *err)
{
	struct o365_deadline dl;
	struct o365_smtp_reply *rr = NULL;
	const struct sm_reply_rule *rule;
	const char **rc = NULL;
	int *codes = NULL, r;
	size_t i;
	unsigned flags = 0;

	*stage = SM_STAGE_MAIL;
	/* a generous deadline: connection timeout plus 64 KB/s for the data */
	o365_deadline_in(&dl, (unsigned)(run->conf->smtp_timeout * 1000LL + e->size / 64));
	if ((rc = calloc(n, sizeof(*rc))) == NULL || (codes = calloc(n, sizeof(*codes))) == NULL ||
	    (rr = calloc(n, sizeof(*rr))) == NULL) {
		r = o365_error_set(err, O365_E_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++)
		rc[i] = e->rcpts.v[i].addr;
	if (rset)
		flags |= O365_SMTP_RSET;
	if (e->eightbit)
		flags |= O365_SMTP_8BIT;
	/* RFC 6531: an address with UTF-8 needs SMTPUTF8 */
	for (i = 0; i < n; i++)
		if (has8(e->rcpts.v[i].addr))
			flags |= O365_SMTP_UTF8;
	r = o365_smtp_envelope(ss->s, run->conf->from_address, e->size, flags, rc, n, codes, rr,
	    &dl, err);
	if (r != O365_OK) {
		for (i = 0; i < n; i++)
			if (codes[i] != 0)
				*stage = SM_STAGE_RCPT;
		goto out;
	}
	*stage = SM_STAGE_DATA;
	/* a local read error (O365_E_IO) is deferred like a 4xx: the message
	 * was not ended with ".", so nothing was sent */
	if (lseek(msgfd, 0, SEEK_SET) == -1)
		r = o365_error_set(err, O365_E_IO, "cannot rewind the message: %s", strerror(errno));
	else
		r = o365_smtp_data_fd(ss->s, msgfd, &dl, err);
	if (r != O365_OK)
		goto out;
	for (i = 0; i < n; i++) {
		if (codes[i] >= 200 && codes[i] < 300)
			continue;
		rule = sm_reply_classify(codes[i], rr[i].enhanced, rr[i].text, SM_STAGE_RCPT);
		if (codes[i] >= 500 && rule->action == SM_ACT_BOUNCE) {
			r = sm_addrs_add(bad, e->rcpts.v[i].addr, NULL);
			snprintf(badwhy, badsz, "%s: %d %s", e->rcpts.v[i].addr, rr[i].code, rr[i].text);
		} else {
			r = sm_addrs_add(later, e->rcpts.v[i].addr, NULL);
		}
		if (r != O365_OK)
			goto out;
	}
	r = O365_OK;
out:
	free(rc);
	free(codes);
	free(rr);
	return r;
}

/* e's recipients = a + b[first..] (the ones still to do). */
static int
rcpts_rest(struct sm_env *e, const struct sm_addrs *a, size_t first)
{
	struct sm_addrs nr = { 0 };
	int r;

	if ((r = addrs_append(&nr, a, 0, a->n)) != O365_OK ||
	    (r = addrs_append(&nr, &e->rcpts, first, e->rcpts.n - (first < e->rcpts.n ? first : e->rcpts.n))) != O365_OK) {
		sm_addrs_free(&nr);
		return r;
	}
	sm_addrs_free(&e->rcpts);
	e->rcpts = nr;
	return O365_OK;
}

/* Remove the first n recipients of e. */
static int
drop_front(struct sm_env *e, size_t n)
{
	struct sm_addrs nr = { 0 };
	int r;

	if (n > e->rcpts.n)
		n = e->rcpts.n;
	if ((r = addrs_append(&nr, &e->rcpts, n, e->rcpts.n - n)) != O365_OK) {
		sm_addrs_free(&nr);
		return r;
	}
	sm_addrs_free(&e->rcpts);
	e->rcpts = nr;
	return O365_OK;
}

/* Close the open session and give its connection slot back. */
static void
end_session(struct session *ss)
{
	struct o365_deadline dl;

	o365_deadline_in(&dl, 2000);
	o365_smtp_quit(&ss->s, &dl);
	sm_flow_slot_release(ss->flow);
	ss->need_rset = 0;
}

/*
 * Deliver one locked message in transactions of at most flow.max_recipients.
 * Returns a session-level error when the session is no longer usable, else
 * O365_OK.  ss->stop says the run should end (slots, limits, holds).
 */
static int
deliver(struct sm_run *run, struct session *ss, struct sm_env *e, int msgfd,
    const struct o365_secret *pw)
{
	struct o365_error err;
	struct o365_deadline dl;
	struct sm_addrs later = { 0 }, bad = { 0 };
	const struct sm_reply_rule *rule;
	char why[1200], badwhy[700];
	size_t n;
	unsigned stage;
	int r, slot, was = 0, sent = 0, waiting = 0, counted = 0, reused, retried = 0;

	o365_error_clear(&err);
again:
	if (ss->s != NULL && ss->xo != NULL && sm_xoauth_session_stale(ss->xo, time(NULL))) {
		/* XOAUTH2: a new session and token before this one expires */
		o365_log(run->lg, LOG_INFO, "xoauth2: %s: the session's token expires in %llds: "
		    "new session", run->conf->auth_user,
		    (long long)(ss->xo->sess_expires - time(NULL)));
		end_session(ss);
	}
	if (ss->down[0] != '\0') {
		/* the server could not be reached in this run: count the attempt
		 * anyway, so every message ages and expires on time */
		e->attempts++;
		defer(run, e, msgfd, ss->down);
		return O365_E_NET;
	}
	pace(run, ss, (unsigned)(e->rcpts.n < ss->lim.max_recipients ? e->rcpts.n :
	    ss->lim.max_recipients));
	reused = ss->s != NULL;		/* after pace(): it may end the session */
	if (ss->s == NULL) {
		if (sm_flow_slot_take(ss->flow, &slot, &err) != O365_OK)
			o365_log(run->lg, LOG_ERR, "flow slots: %s", err.why);
		else if (slot == -1) {
			o365_log(run->lg, LOG_INFO, "all %u connection slots of %s in use (flow.connections); "
			    "the other runners carry on", ss->lim.connections, run->conf->auth_user);
			ss->stop = 1;
			snprintf(run->last_status, sizeof(run->last_status),
			    "queued: all connection slots in use");
			return O365_OK;
		}
		if ((r = session_open(run, ss, pw, &stage, &err)) != O365_OK) {
			sm_flow_slot_release(ss->flow);
			if (ss->held[0] != '\0') {
				/* xoauth2: the admin must act (one alert per hold); not
				 * this message's fault, not counted; the rest stays queued */
				long long until;

				run->last_rule = sm_reply_classify_error(&err, SM_STAGE_AUTH);
				if (hold_record(run, ss, ss->held, &until))
					o365_log(run->lg, LOG_ALERT, "%s", ss->held);
				else
					o365_log(run->lg, LOG_NOTICE, "queue still held, next try in %llds: "
					    "the relay token was refused again", until - run_time(run));
				log_attempt(run, e, "held", "queue held: the relay token was refused");
				copy_capped(run->last_status, sizeof(run->last_status), "held: ", ss->held);
				ss->stop = 1;
				return O365_E_AUTH;
			}
			reply_text(why, sizeof(why), &err);
			rule = sm_reply_classify_error(&err, stage);
			run->last_rule = rule;
			e->attempts++;
			if (rule->action == SM_ACT_HOLD_QUEUE) {
				act(run, ss, e, msgfd, rule, why);
				return r;
			}
			/* anything else about the session: retry, the rest too */
			snprintf(ss->down, sizeof(ss->down), "%s", why);
			defer(run, e, msgfd, why);
			return r;
		}
		o365_error_clear(&err);
		if (sm_flow_release(ss->flow, &was, &err) != O365_OK)
			o365_log(run->lg, LOG_ERR, "flow state: %s", err.why);
		else if (was)
			o365_log(run->lg, LOG_NOTICE, "queue resumed: authenticated to %s as %s",
			    run->conf->smtp_host, run->conf->auth_user);
	}
	badwhy[0] = '\0';
	r = O365_OK;
	/* e->rcpts: still to try; later: refused for now, set aside */
	while (e->rcpts.n > 0) {
		n = e->rcpts.n < ss->lim.max_recipients ? e->rcpts.n : ss->lim.max_recipients;
		if (!reserve(run, ss, e, (unsigned)n)) {
			waiting = 1;
			break;
		}
		if (!counted) {
			e->attempts++;	/* only a transaction tried is an attempt */
			counted = 1;
		}
		/* after a message: RSET, pipelined with MAIL and RCPT where offered */
		r = transaction(run, ss, e, msgfd, n, ss->need_rset, &later, &bad, badwhy, sizeof(badwhy),
		    &stage, &err);
		ss->need_rset = 0;
		if (r != O365_OK)
			break;
		sent = 1;
		ss->need_rset = 1;
		log_attempt(run, e, "sent", o365_smtp_last_reply(ss->s)->text);
		snprintf(run->last_status, sizeof(run->last_status), "sent: %d %s",
		    o365_smtp_last_reply(ss->s)->code, o365_smtp_last_reply(ss->s)->text);
		/* never send to these again: the envelope forgets them now */
		if ((r = rcpts_rest(e, &later, n)) != O365_OK)
			break;
		if (e->rcpts.n > later.n) {
			save_env(run, e);
			/* back to the ones still to try, the set-aside ones apart */
			if ((r = drop_front(e, later.n)) != O365_OK)
				break;
		} else {
			sm_addrs_free(&e->rcpts);
			e->rcpts = later;
			memset(&later, 0, sizeof(later));
			break;
		}
	}
	if (r != O365_OK && reused && !retried && !sent && stage == SM_STAGE_MAIL &&
	    !o365_smtp_usable(ss->s)) {
		/* the server ended the session between two messages (idle, an
		 * expired or revoked token): nothing of this one was sent, so
		 * once more on a new session, not counted as an attempt */
		reply_text(why, sizeof(why), &err);
		o365_log(run->lg, LOG_NOTICE, "%s: the session ended before the message (%s): "
		    "new session", e->id, why);
		if (counted)
			e->attempts--;
		counted = 0;
		retried = 1;
		end_session(ss);
		goto again;
	}
	if (later.n > 0 && rcpts_rest(e, &later, 0) != O365_OK && r == O365_OK)
		r = O365_E_NOMEM;
	sm_addrs_free(&later);
	if (waiting && r == O365_OK) {
		/* postponed by reserve(): already recorded */
		if (sent)
			run->sent++;
		save_env(run, e);
		goto out_ok;
	}
	if (sent)
		run->sent++;
	if (bad.n > 0 && !e->bounce) {
		struct sm_env b = *e;

		b.rcpts = bad;
		o365_error_clear(&err);
		if (!run->no_bounce &&
		    sm_bounce(run->q, run->conf, run->policy, &b, msgfd, badwhy, run->lg, &err) != O365_OK)
			o365_log(run->lg, LOG_ERR, "%s: no bounce: %s", e->id, err.why);
	}
	if (r == O365_OK) {
		if (e->rcpts.n > 0 && !sent)
			defer(run, e, msgfd, "nothing sent");
		else if (e->rcpts.n > 0)
			defer(run, e, msgfd, "some recipients deferred");
		else if (sm_queue_remove(run->q->qfd, e->id, &err) != O365_OK)
			o365_log(run->lg, LOG_ERR, "%s: sent but %s", e->id, err.why);
		goto out_ok;
	}
	if (r == O365_E_NOMEM) {
		defer(run, e, msgfd, "out of memory");
		goto out;
	}
	reply_text(why, sizeof(why), &err);
	rule = sm_reply_classify_error(&err, stage);
	act(run, ss, e, msgfd, rule, why);
	if (!is_session_error(r) && ss->s != NULL && o365_smtp_usable(ss->s)) {
		o365_deadline_in(&dl, (unsigned)run->conf->smtp_timeout * 1000u);
		if (o365_smtp_rset(ss->s, &dl, &err) != O365_OK)
			r = O365_E_NET;		/* reconnect for the next one */
		else
			r = O365_OK;
	} else if (!is_session_error(r) && ss->s != NULL) {
		r = O365_E_NET;
	}
	goto out;
out_ok:
	r = O365_OK;
out:
	sm_addrs_free(&later);
	sm_addrs_free(&bad);
	if ((is_session_error(r) || r == O365_E_NET) && ss->s != NULL) {
		o365_deadline_in(&dl, 1000);
		o365_smtp_quit(&ss->s, &dl);
		sm_flow_slot_release(ss->flow);
	}
	if (ss->stop && ss->s != NULL) {
		o365_deadline_in(&dl, 2000);
		o365_smtp_quit(&ss->s, &dl);
		sm_flow_slot_release(ss->flow);
	}
	return r;
}

/* One pass over queue/: every due message (all with force) in queue order;
 * with since > 0 no bounce queued since then (later passes leave the run's
 * own reports to the next run; new submissions they take: a submitter that
 * found the runner lock held started no runner of its own). */
static int
run_pass(struct sm_run *run, struct session *ss, const struct o365_secret *pw, int force,
    long long since, struct o365_error *err)
{
	struct sm_env e;
	struct o365_error e2;
	char **ids = NULL;
	size_t n = 0, i;
	int r, fd;

	memset(&e, 0, sizeof(e));
	if ((r = sm_queue_list(run->q->qfd, &ids, &n, err)) != O365_OK)
		return r;
	for (i = 0; i < n && !ss->stop; i++) {
		if (run->only_id != NULL && strcmp(ids[i], run->only_id) != 0)
			continue;
		o365_error_clear(&e2);
		if (sm_queue_lock(run->q->qfd, ids[i], &fd, &e2) != O365_OK || fd == -1)
			continue;	/* another runner has it, or it is gone */
		if (sm_queue_read_env(run->q->qfd, ids[i], &e, run->lg, &e2) != O365_OK) {
			o365_log(run->lg, LOG_ERR, "%s: %s; left in the queue", ids[i], e2.why);
			sm_env_free(&e);
			close(fd);
			continue;
		}
		if (e.held || (!force && run->only_id == NULL && e.next_try > run_time(run)) ||
		    (since > 0 && e.bounce && e.created >= since)) {
			if (e.held && run->only_id != NULL)
				copy_capped(run->last_status, sizeof(run->last_status), "held: ",
				    e.last_error);
			sm_env_free(&e);
			close(fd);
			continue;
		}
		(void)deliver(run, ss, &e, fd, pw);
		sm_env_free(&e);
		close(fd);
		/* a session that broke mid-run is opened again for the next one;
		 * one that could not be opened at all marks the rest deferred */
	}
	sm_queue_list_free(ids, n);
	return O365_OK;
}

int
sm_run_queue(struct sm_run *run, struct o365_error *err)
{
	struct o365_secret *pw = NULL;
	struct o365_deadline dl;
	struct sm_xoauth xo;
	struct session ss;
	char helo[256], sdir[600], reason[512];
	long long until = 0, start;
	int r, sent, progress, lockfd = -1, released = 0;

	memset(&ss, 0, sizeof(ss));
	memset(&xo, 0, sizeof(xo));
	if (geteuid() != 0 && geteuid() != run->q->quid)
		return o365_error_set(err, O365_E_CONFIG, "the queue runner must start as root");
	if ((r = sm_conf_check_relay(run->conf, err)) != O365_OK)
		return r;
	r = snprintf(sdir, sizeof(sdir), "%s/state", run->q->dir);
	if (r < 0 || (size_t)r >= sizeof(sdir))
		return o365_error_set(err, O365_E_CONFIG, "queue.dir is too long");
	/* -odi sends its own message only: it must not make submitters think
	 * the queue is being drained */
	if (run->only_id == NULL && sm_queue_runner_lock(run->q, &lockfd) == 0 && run->background) {
		o365_log(run->lg, LOG_DEBUG, "another runner is draining the queue");
		return O365_OK;
	}
	if (geteuid() == 0) {
		r = sm_queue_pickup(run->q, run->policy, run->lg, err);
		if (r < 0)
			o365_log(run->lg, LOG_ERR, "pickup: %s", err->why);
		if ((r = sm_flow_prepare_dir(sdir, run->q->quid, run->q->qgid, err)) != O365_OK)
			goto out;
	}
	/* read as root, then never root again */
	if (sm_xoauth_enabled(run->conf)) {
		if ((r = sm_xoauth_init(&xo, run->conf, &ss.tls, run->q->quid, 1, err)) != O365_OK) {
			/* nothing was tried: the queue is held until the admin fixes it */
			o365_log(run->lg, LOG_ALERT, "queue held: %s", err->why);
			run->held = 1;
			goto out;
		}
		ss.xo = &xo;
	} else if ((r = o365_secret_read_file(run->conf->auth_password_file, 0, &pw, err)) != O365_OK) {
		goto out;
	}
	if ((r = sm_drop_privileges(run->q->quid, run->q->qgid, err)) != O365_OK)
		goto out;
	sm_conf_flow_limits(run->conf, &ss.lim);
	if ((r = sm_flow_open(sdir, run->conf->auth_user, &ss.lim, &ss.flow, err)) != O365_OK)
		goto out;
	if (run->clock != NULL && run->clock->now != NULL)
		sm_flow_set_clock(ss.flow, run->clock->now, run->clock->ctx);
	if ((r = sm_flow_held(ss.flow, &until, reason, sizeof(reason), err)) != O365_OK)
		goto out;
	if (until > run_time(run) && !run->force) {
		o365_log(run->lg, LOG_INFO, "queue held until %lld: %s (o365-sendmail -q tries now)",
		    until, reason);
		copy_capped(run->last_status, sizeof(run->last_status), "queued, the queue is held: ",
		    reason);
		r = O365_OK;
		goto out;
	}
	if (run->conf->smtp_helo != NULL)
		snprintf(helo, sizeof(helo), "%s", run->conf->smtp_helo);
	else if (sm_fqdn(helo, sizeof(helo)) != 0)
		snprintf(helo, sizeof(helo), "localhost");
	ss.tls.ca_file = run->conf->tls_ca_file;
	ss.tls.ca_dir = run->conf->tls_ca_dir;
	if ((r = o365_tls_version_parse(run->conf->tls_min_version, &ss.tls.min_version)) != O365_OK) {
		r = o365_error_set(err, O365_E_CONFIG, "tls.min_version: %s", run->conf->tls_min_version);
		goto out;
	}
	ss.so.host = run->conf->smtp_host;
	ss.so.port = (unsigned)run->conf->smtp_port;
	ss.so.tls_mode = strcmp(run->conf->smtp_tls, "implicit") == 0 ? O365_SMTP_IMPLICIT :
	    O365_SMTP_STARTTLS;
	ss.so.tls = &ss.tls;
	ss.so.helo = helo;
	ss.mech = o365_sasl_mech_parse(run->conf->auth_mechanism);
	if (ss.mech == 0 || (ss.mech == O365_SASL_XOAUTH2) != (ss.xo != NULL)) {
		r = o365_error_set(err, O365_E_CONFIG, "auth.mechanism %s not supported",
		    run->conf->auth_mechanism);
		goto out;
	}
	(void)sm_queue_sweep(run->q->qfd, run->lg);
	start = run_time(run);
	/* pass after pass while one sends something: a backlog, and what comes
	 * meanwhile, drains in one run over one session; only the first pass
	 * of -q ignores the backoff */
	for (;;) {
		sent = run->sent;
		if ((r = run_pass(run, &ss, pw, run->passes == 0 && run->force,
		    run->passes == 0 ? 0 : start, err)) != O365_OK)
			goto out;
		run->passes++;
		if (ss.stop || run->only_id != NULL)
			break;
		progress = run->sent > sent && run->passes < SM_MAX_PASSES;
		if (released) {
			/* the look after releasing sent mail: go on as the holder */
			if (!progress || sm_queue_runner_lock(run->q, &lockfd) != 1)
				break;
			released = 0;
			continue;
		}
		if (progress)
			continue;
		if (lockfd == -1)
			break;
		/* nothing more: let the next submitter start a runner, then look
		 * once more for what came while we held the lock */
		close(lockfd);
		lockfd = -1;
		released = 1;
	}
	r = O365_OK;
	if (ss.held[0] != '\0') {
		run->held = 1;
		r = o365_error_set(err, O365_E_AUTH, "%s", ss.held);
	}
out:
	if (ss.s != NULL) {
		o365_deadline_in(&dl, 2000);
		o365_smtp_quit(&ss.s, &dl);
	}
	if (lockfd != -1)
		close(lockfd);
	sm_flow_close(&ss.flow);
	o365_secret_free(&pw);
	sm_xoauth_free(&xo);
	return r;
}
