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
#include "relay.h"

#define BACKOFF_MIN	60		/* first retry after a minute */
#define BACKOFF_MAX	3600		/* then doubling up to an hour */

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

struct session {
	struct o365_smtp	*s;
	struct o365_tls_opts	 tls;
	struct o365_smtp_opts	 so;
	int			 mech;
	int			 need_rset;	/* a transaction completed: RSET before the next */
	char			 down[1200];	/* why no session could be opened in this run */
};

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
	    (long long)time(NULL) - e->created, e->attempts, status, clean);
}

static int
session_open(struct sm_run *run, struct session *ss, const struct o365_secret *pw,
    const char *helo, struct o365_error *err)
{
	struct o365_deadline dl;
	int r;

	o365_deadline_in(&dl, (unsigned)run->conf->smtp_timeout * 1000u);
	if ((r = o365_smtp_connect(&ss->so, &dl, run->lg, &ss->s, err)) != O365_OK)
		return r;
	(void)helo;
	if (!(o365_smtp_caps(ss->s)->auth & (unsigned)ss->mech)) {
		r = o365_error_set(err, O365_E_AUTH, "the server does not offer AUTH %s",
		    o365_sasl_mech_name(ss->mech));
		o365_smtp_quit(&ss->s, &dl);
		return r;
	}
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

static long long
backoff(int attempts)
{
	long long d = BACKOFF_MIN;

	while (--attempts > 0 && d < BACKOFF_MAX)
		d *= 2;
	return d > BACKOFF_MAX ? BACKOFF_MAX : d;
}

/* Record a temporary failure; fail and bounce once too old. */
static void
defer(struct sm_run *run, struct sm_env *e, int msgfd, const char *why)
{
	struct o365_error err;
	long long now = (long long)time(NULL);

	o365_error_clear(&err);
	snprintf(e->last_error, sizeof(e->last_error), "%s", why);
	if (now - e->created >= run->conf->queue_max_age) {
		log_attempt(run, e, "expired", why);
		if (sm_queue_fail(run->q, e->id, &err) != O365_OK)
			o365_log(run->lg, LOG_ERR, "%s: %s", e->id, err.why);
		else if (sm_bounce(run->q, run->conf, run->policy, e, msgfd, why, run->lg, &err) != O365_OK)
			o365_log(run->lg, LOG_ERR, "%s: no bounce: %s", e->id, err.why);
		run->failed++;
		snprintf(run->last_status, sizeof(run->last_status), "expired: %s", why);
		return;
	}
	e->next_try = now + backoff(e->attempts);
	log_attempt(run, e, "deferred", why);
	if (sm_queue_write_env(run->q->qfd, e, run->q->quid, run->q->qgid, &err) != O365_OK)
		o365_log(run->lg, LOG_ERR, "%s: cannot record the attempt: %s", e->id, err.why);
	run->deferred++;
	snprintf(run->last_status, sizeof(run->last_status), "deferred: %s", why);
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

static void
fail(struct sm_run *run, struct sm_env *e, int msgfd, const char *why)
{
	struct o365_error err;

	o365_error_clear(&err);
	copy_capped(e->last_error, sizeof(e->last_error), "", why);
	log_attempt(run, e, "failed", why);
	if (sm_queue_write_env(run->q->qfd, e, run->q->quid, run->q->qgid, &err) != O365_OK)
		o365_log(run->lg, LOG_ERR, "%s: %s", e->id, err.why);
	if (sm_queue_fail(run->q, e->id, &err) != O365_OK) {
		o365_log(run->lg, LOG_ERR, "%s: %s", e->id, err.why);
		return;
	}
	if (sm_bounce(run->q, run->conf, run->policy, e, msgfd, why, run->lg, &err) != O365_OK)
		o365_log(run->lg, LOG_ERR, "%s: no bounce: %s", e->id, err.why);
	run->failed++;
	copy_capped(run->last_status, sizeof(run->last_status), "failed: ", why);
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

/*
 * Deliver one locked message.  Returns a session-level error when the
 * session is no longer usable (the run stops), else O365_OK.
 */
static int
deliver(struct sm_run *run, struct session *ss, struct sm_env *e, int msgfd,
    const struct o365_secret *pw, const char *helo)
{
	struct o365_error err;
	struct o365_deadline dl;
	struct sm_addrs keep = { 0 }, bad = { 0 };
	struct o365_smtp_reply *rr = NULL;
	const char **rc = NULL;
	int *codes = NULL, r, any_temp = 0;
	char why[1200];
	size_t i;
	unsigned flags = 0;

	o365_error_clear(&err);
	e->attempts++;
	if (ss->down[0] != '\0') {
		/* the server could not be reached in this run: count the attempt
		 * anyway, so every message ages and expires on time */
		defer(run, e, msgfd, ss->down);
		return O365_E_NET;
	}
	if (ss->s == NULL && (r = session_open(run, ss, pw, helo, &err)) != O365_OK) {
		reply_text(why, sizeof(why), &err);
		snprintf(ss->down, sizeof(ss->down), "%s", why);
		if (r == O365_E_PERM)		/* a 5xx greeting: still ours to retry */
			r = O365_E_TEMP;
		defer(run, e, msgfd, why);
		return r;
	}
	/* a generous deadline: connection timeout plus 64 KB/s for the data */
	o365_deadline_in(&dl, (unsigned)(run->conf->smtp_timeout * 1000LL + e->size / 64));
	if ((rc = calloc(e->rcpts.n, sizeof(*rc))) == NULL ||
	    (codes = calloc(e->rcpts.n, sizeof(*codes))) == NULL ||
	    (rr = calloc(e->rcpts.n, sizeof(*rr))) == NULL) {
		defer(run, e, msgfd, "out of memory");
		r = O365_OK;
		goto out;
	}
	for (i = 0; i < e->rcpts.n; i++)
		rc[i] = e->rcpts.v[i].addr;
	if (e->eightbit)
		flags |= O365_SMTP_8BIT;
	/* RFC 6531: an address with UTF-8 needs SMTPUTF8 */
	for (i = 0; i < e->rcpts.n; i++)
		if (has8(e->rcpts.v[i].addr))
			flags |= O365_SMTP_UTF8;
	r = o365_smtp_envelope(ss->s, run->conf->from_address, e->size, flags, rc, e->rcpts.n, codes,
	    rr, &dl, &err);
	if (r == O365_OK) {
		/* a local read error (O365_E_IO) is deferred below like a 4xx:
		 * the message was not ended with ".", so nothing was sent */
		if (lseek(msgfd, 0, SEEK_SET) == -1)
			r = o365_error_set(&err, O365_E_IO, "cannot rewind the message: %s", strerror(errno));
		else
			r = o365_smtp_data_fd(ss->s, msgfd, &dl, &err);
	}
	if (r == O365_OK) {
		/* delivered to those accepted; sort the others out */
		for (i = 0; i < e->rcpts.n; i++) {
			if (codes[i] >= 200 && codes[i] < 300)
				continue;
			if (codes[i] >= 500) {
				if (sm_addrs_add(&bad, e->rcpts.v[i].addr, NULL) != O365_OK)
					o365_log(run->lg, LOG_ERR, "%s: out of memory", e->id);
			} else if (sm_addrs_add(&keep, e->rcpts.v[i].addr, NULL) == O365_OK) {
				any_temp = 1;
			}
		}
		ss->need_rset = 1;
		log_attempt(run, e, "sent", o365_smtp_last_reply(ss->s)->text);
		run->sent++;
		snprintf(run->last_status, sizeof(run->last_status), "sent: %d %s",
		    o365_smtp_last_reply(ss->s)->code, o365_smtp_last_reply(ss->s)->text);
		if (bad.n > 0) {
			struct sm_env b = *e;

			b.rcpts = bad;
			snprintf(why, sizeof(why), "recipient refused: %d %s", rr[0].code, rr[0].text);
			for (i = 0; i < e->rcpts.n; i++)
				if (codes[i] >= 500)
					snprintf(why, sizeof(why), "%s: %d %s", e->rcpts.v[i].addr, rr[i].code,
					    rr[i].text);
			if (!e->bounce && sm_bounce(run->q, run->conf, run->policy, &b, msgfd, why,
			    run->lg, &err) != O365_OK)
				o365_log(run->lg, LOG_ERR, "%s: no bounce: %s", e->id, err.why);
		}
		if (any_temp) {
			sm_addrs_free(&e->rcpts);
			e->rcpts = keep;
			memset(&keep, 0, sizeof(keep));
			defer(run, e, msgfd, "some recipients deferred");
		} else if (sm_queue_remove(run->q->qfd, e->id, &err) != O365_OK) {
			o365_log(run->lg, LOG_ERR, "%s: sent but %s", e->id, err.why);
		}
		r = O365_OK;
		goto out;
	}
	reply_text(why, sizeof(why), &err);
	if (r == O365_E_PERM) {
		/* every recipient refused, or MAIL / DATA refused for good
		 * (554 5.2.252 SendAsDenied lands here, kept in failed/) */
		if (err.reply == 0 && rr[0].code >= 500)
			snprintf(why, sizeof(why), "%d %s", rr[0].code, rr[0].text);
		fail(run, e, msgfd, why);
		r = O365_OK;
	} else {
		defer(run, e, msgfd, why);
		if (!is_session_error(r))
			r = O365_OK;
	}
	if (r == O365_OK && ss->s != NULL) {
		o365_deadline_in(&dl, (unsigned)run->conf->smtp_timeout * 1000u);
		if (o365_smtp_rset(ss->s, &dl, &err) != O365_OK)
			r = O365_E_NET;		/* reconnect for the next one */
	}
out:
	free(rc);
	free(codes);
	free(rr);
	sm_addrs_free(&keep);
	sm_addrs_free(&bad);
	if (is_session_error(r) && ss->s != NULL) {
		o365_deadline_in(&dl, 1000);
		o365_smtp_quit(&ss->s, &dl);
	}
	return r;
}

int
sm_run_queue(struct sm_run *run, struct o365_error *err)
{
	struct o365_secret *pw = NULL;
	struct o365_deadline dl;
	struct session ss;
	struct sm_env e;
	struct o365_error e2;
	char **ids = NULL, helo[256];
	size_t n = 0, i;
	int r, fd;

	memset(&ss, 0, sizeof(ss));
	memset(&e, 0, sizeof(e));
	if (geteuid() != 0 && geteuid() != run->q->quid)
		return o365_error_set(err, O365_E_CONFIG, "the queue runner must start as root");
	if ((r = sm_conf_check_relay(run->conf, err)) != O365_OK)
		return r;
	if (geteuid() == 0) {
		r = sm_queue_pickup(run->q, run->policy, run->lg, err);
		if (r < 0)
			o365_log(run->lg, LOG_ERR, "pickup: %s", err->why);
	}
	/* read as root, then never root again */
	if ((r = o365_secret_read_file(run->conf->auth_password_file, 0, &pw, err)) != O365_OK)
		return r;
	if ((r = sm_drop_privileges(run->q->quid, run->q->qgid, err)) != O365_OK)
		goto out;
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
	if (ss.mech == 0 || ss.mech == O365_SASL_XOAUTH2) {
		r = o365_error_set(err, O365_E_CONFIG, "auth.mechanism %s not supported",
		    run->conf->auth_mechanism);
		goto out;
	}
	(void)sm_queue_sweep(run->q->qfd, run->lg);
	if ((r = sm_queue_list(run->q->qfd, &ids, &n, err)) != O365_OK)
		goto out;
	for (i = 0; i < n; i++) {
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
		if (!run->force && run->only_id == NULL && e.next_try > (long long)time(NULL)) {
			sm_env_free(&e);
			close(fd);
			continue;
		}
		if (ss.s != NULL && ss.need_rset) {
			ss.need_rset = 0;
			o365_deadline_in(&dl, (unsigned)run->conf->smtp_timeout * 1000u);
			if (o365_smtp_rset(ss.s, &dl, &e2) != O365_OK) {
				o365_deadline_in(&dl, 1000);
				o365_smtp_quit(&ss.s, &dl);
			}
		}
		r = deliver(run, &ss, &e, fd, pw, helo);
		sm_env_free(&e);
		close(fd);
		(void)r;
		/* a session that broke mid-run is opened again for the next one;
		 * one that could not be opened at all marks the rest deferred */
	}
	r = O365_OK;
out:
	if (ss.s != NULL) {
		o365_deadline_in(&dl, 2000);
		o365_smtp_quit(&ss.s, &dl);
	}
	sm_queue_list_free(ids, n);
	o365_secret_free(&pw);
	return r;
}
