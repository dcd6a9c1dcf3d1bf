/*
 * testsend.c: o365-sendmail --test-send (see testsend.h).
 *
 * Through the queue, with -odi semantics, on purpose: the message takes
 * the path every message takes (intake with the From rewrite and the
 * aliases, then the runner with its flow limits, TLS, AUTH or XOAUTH2 and
 * its reply table), so what the test shows is what the queue will do.  The
 * transcript is the SMTP engine's trace (LOG_DEBUG "C: "/"S: " lines, AUTH
 * already shown as <secret>) taken through a log sink that also passes
 * every other line on to the mail log.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "o365/secret.h"
#include "probe.h"
#include "relay.h"
#include "replies.h"
#include "testsend.h"
#include "xoauth.h"

#define TS_NOT_BEFORE	86400	/* seconds the timer's runs leave the test message alone */

struct ts_sink {
	FILE			*out;
	const struct o365_log	*next;		/* the mail log */
	const char		*secret;	/* the relay password, or NULL */
	size_t			 secretlen;
	long long		 size;		/* of the queued message */
	int			 failed;	/* a write to out failed */
};

static void
ts_put(struct ts_sink *ts, const char *s)
{
	if (sm_put_masked(ts->out, s, ts->secret, ts->secretlen) != 0)
		ts->failed = 1;
}

static void
ts_sink_fn(void *ctx, int prio, const char *msg)
{
	struct ts_sink *ts = ctx;
	char line[128];

	if (prio == LOG_DEBUG && (strncmp(msg, "C: ", 3) == 0 || strncmp(msg, "S: ", 3) == 0)) {
		if (strcmp(msg, "C: <message>") == 0) {
			snprintf(line, sizeof(line), "C: <message, %lld bytes>", ts->size);
			msg = line;
		}
		ts_put(ts, "  ");
	} else {
		ts_put(ts, "  -- ");
		/* the mail log keeps what it always gets: not the trace */
		if (ts->next != NULL && ts->next->fn != NULL && (prio != LOG_DEBUG || ts->next->debug))
			ts->next->fn(ts->next->ctx, prio, msg);
	}
	ts_put(ts, msg);
	ts_put(ts, "\n");
}

static void ts_printf(struct ts_sink *ts, const char *fmt, ...) O365_PRINTF(2, 3);

static void
ts_printf(struct ts_sink *ts, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		ts->failed = 1;
	else
		ts_put(ts, line);	/* a cut line is still printed */
}

/* The test message, in a temporary file, from its first byte. */
static FILE *
ts_message(const struct sm_test_send *o)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	FILE *fp;

	if ((fp = tmpfile()) == NULL)
		return NULL;
	if (gmtime_r(&now, &tm) == NULL || strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S UTC",
	    &tm) == 0)
		snprintf(date, sizeof(date), "%lld", (long long)now);
	if (fprintf(fp, "To: %s\nSubject: o365-sendmail test message from %s\n\n"
	    "This is a test message sent by o365-sendmail --test-send on %s\n"
	    "at %s, relayed through %s port %d as %s.\n"
	    "No reply is needed.\n", o->rcpt, o->fqdn, o->fqdn, date, o->conf->smtp_host,
	    o->conf->smtp_port, o->conf->auth_user != NULL ? o->conf->auth_user : "(none)") < 0 ||
	    fflush(fp) == EOF || fseek(fp, 0, SEEK_SET) != 0) {
		fclose(fp);
		return NULL;
	}
	return fp;
}

/* Queue the test message as root submits; id gets its queue id. */
static int
ts_queue(const struct sm_test_send *o, struct sm_queue *q, char id[SM_ID_LEN + 1],
    long long *size_out, struct o365_error *err)
{
	struct sm_in in;
	struct sm_hdrs h;
	struct sm_env e;
	struct sm_ident ident;
	FILE *fp = NULL;
	int r;

	memset(&in, 0, sizeof(in));
	memset(&h, 0, sizeof(h));
	memset(&e, 0, sizeof(e));
	id[0] = '\0';
	if (sm_addrs_parse(&e.rcpts, o->rcpt, strlen(o->rcpt)) != O365_OK || e.rcpts.n != 1) {
		r = o365_error_set(err, O365_E_INVAL, "--test-send needs one address: %s", o->rcpt);
		goto out;
	}
	if ((fp = ts_message(o)) == NULL) {
		r = o365_error_set(err, O365_E_IO, "cannot write the test message");
		goto out;
	}
	if ((r = sm_in_init(&in, fileno(fp), 0, 65536)) != O365_OK) {
		r = o365_error_set(err, r, "out of memory");
		goto out;
	}
	if ((r = sm_hdrs_read(&in, &h)) != O365_OK) {
		r = o365_error_set(err, r, "cannot read the test message back");
		goto out;
	}
	memset(&ident, 0, sizeof(ident));
	ident.user = "root";
	ident.fqdn = o->fqdn;
	if ((r = sm_hdrs_complete(&h, &ident)) != O365_OK) {
		r = o365_error_set(err, r, "cannot complete the headers");
		goto out;
	}
	e.uid = getuid();
	snprintf(e.user, sizeof(e.user), "root");
	snprintf(e.sender, sizeof(e.sender), "root@%s", o->fqdn);
	e.created = sm_clock_now(o->clock);
	/* not due for the automatic runs (the timer, the path unit): this run
	 * takes it by id; if --test-send dies first, it goes out a day later */
	e.next_try = e.created + TS_NOT_BEFORE;
	if ((r = sm_queue_commit(q, &e, &h, &in, o->policy, o->lg, err)) != O365_OK)
		goto out;
	snprintf(id, SM_ID_LEN + 1, "%s", e.id);
	*size_out = (long long)e.size;
out:
	if (fp != NULL)
		fclose(fp);
	sm_in_free(&in);
	sm_hdrs_free(&h);
	sm_env_free(&e);
	return r;
}

/* Remove the test message from queue/ or failed/ (not sent: no retry). */
static int
ts_unqueue(struct sm_queue *q, const char *id)
{
	struct o365_error err;
	int dirs[2] = { q->qfd, q->failfd }, fd, i, gone = 0;

	for (i = 0; i < 2; i++) {
		o365_error_clear(&err);
		if (dirs[i] == -1 || sm_queue_lock(dirs[i], id, &fd, &err) != O365_OK || fd == -1)
			continue;
		if (sm_queue_remove(dirs[i], id, &err) == O365_OK)
			gone = 1;
		close(fd);
	}
	return gone;
}

static int
ts_exit(const struct sm_reply_rule *rule, int r)
{
	if (r == O365_E_CONFIG)
		return EX_CONFIG;
	if (rule == NULL)
		return EX_TEMPFAIL;	/* a wait: rate, quota, busy slots */
	switch (rule->action) {
	case SM_ACT_RETRY:
	case SM_ACT_WAIT_QUOTA:
		return EX_TEMPFAIL;
	default:
		return EX_UNAVAILABLE;
	}
}

int
sm_test_send(const struct sm_test_send *o, FILE *out)
{
	struct o365_error err;
	struct o365_secret *pw = NULL;
	struct sm_queue q;
	struct sm_run run;
	struct ts_sink ts;
	struct o365_log tlg;
	char id[SM_ID_LEN + 1];
	long long size = 0;
	int r, rc, qopen = 0;

	o365_error_clear(&err);
	memset(&ts, 0, sizeof(ts));
	ts.out = out;
	ts.next = o->lg;
	tlg.fn = ts_sink_fn;
	tlg.ctx = &ts;
	tlg.debug = 1;
	if ((r = sm_conf_check_relay(o->conf, &err)) != O365_OK) {
		ts_printf(&ts, "Not sent: %s\n", err.why);
		rc = EX_CONFIG;
		goto out;
	}
	/* the password, read as root like the runner will: masked in the
	 * transcript wherever it might appear (the engine never prints it) */
	if (!sm_xoauth_enabled(o->conf) &&
	    o365_secret_read_file(o->conf->auth_password_file, 0, &pw, &err) == O365_OK) {
		ts.secret = pw->data;
		ts.secretlen = pw->len;
	}
	o365_error_clear(&err);
	if ((r = sm_queue_open(&q, o->conf->queue_dir, o->quid, o->qgid, &err)) != O365_OK) {
		ts_printf(&ts, "Not sent: %s\n", err.why);
		rc = r == O365_E_CONFIG ? EX_CONFIG : EX_IOERR;
		goto out;
	}
	qopen = 1;
	if ((r = ts_queue(o, &q, id, &size, &err)) != O365_OK) {
		ts_printf(&ts, "Not sent: %s\n", err.why);
		rc = r == O365_E_INVAL ? EX_DATAERR : r == O365_E_TEMP ? EX_TEMPFAIL : EX_IOERR;
		goto out;
	}
	ts.size = size;
	ts_printf(&ts, "Test message %s (%lld bytes) to <%s>, queued and sent now as -odi does, "
	    "through %s port %d (%s) as %s\n", id, size, o->rcpt, o->conf->smtp_host,
	    o->conf->smtp_port, o->conf->smtp_tls, o->conf->auth_user);
	memset(&run, 0, sizeof(run));
	run.conf = o->conf;
	run.q = &q;
	run.policy = o->policy;
	run.lg = &tlg;
	run.force = 1;
	run.only_id = id;
	run.clock = o->clock;
	run.no_bounce = 1;
	r = sm_run_queue(&run, &err);
	if (run.sent > 0) {
		ts_printf(&ts, "Result: %s\n", run.last_status);
		rc = EX_OK;
		/* an alias that expands to several recipients: some deferred */
		if (ts_unqueue(&q, id)) {
			ts_printf(&ts, "Not sent to every recipient: the test message was removed "
			    "from the queue, it is not retried.\n");
			rc = EX_TEMPFAIL;
		}
		goto out;
	}
	if (r != O365_OK)
		ts_printf(&ts, "Not sent: %s\n", err.why);
	if (run.last_status[0] != '\0')
		ts_printf(&ts, "Not sent: %s\n", run.last_status);
	if (run.last_rule != NULL)
		ts_printf(&ts, "Queue action: %s (rule %s)\nAdvice: %s\n",
		    sm_reply_action_name(run.last_rule->action), run.last_rule->name,
		    run.last_rule->advice);
	if (ts_unqueue(&q, id))
		ts_printf(&ts, "The test message was removed from the queue: it is not retried.\n");
	rc = ts_exit(run.last_rule, r);
out:
	if (qopen)
		sm_queue_close(&q);
	o365_secret_free(&pw);
	if (fflush(out) == EOF || ts.failed)
		rc = rc == EX_OK ? EX_IOERR : rc;
	return rc;
}
