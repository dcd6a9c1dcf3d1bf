/*
 * bounce.c: one report to the local sender (through the aliases) or to
 * queue.bounce_to when a message fails for good.  A bounce carries an
 * X-O365-Sendmail-Bounce header and Bounce: 1 in its envelope, and is never
 * bounced itself.  The envelope sender stays the relay mailbox: Exchange
 * Online refuses anything else, so the empty reverse-path cannot be used.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

/* Copy the original's header block (capped) into out. */
static int
copy_headers(int msgfd, struct sm_out *out)
{
	struct sm_in in;
	const char *p;
	size_t len, total = 0;
	int bol, r;

	if (lseek(msgfd, 0, SEEK_SET) == -1)
		return O365_E_IO;
	if ((r = sm_in_init(&in, msgfd, 0, 65536)) != O365_OK)
		return r;
	while ((r = sm_in_piece(&in, 4096, &p, &len, &bol)) == 1) {
		if ((len == 1 && p[0] == '\n') || (len == 2 && p[0] == '\r'))
			break;
		if ((total += len) > 65536)
			break;
		if ((r = sm_out_write(out, p, len)) != O365_OK)
			break;
	}
	sm_in_free(&in);
	return r < 0 ? r : O365_OK;
}

static int
is_bounce(const struct sm_env *e, int msgfd)
{
	char buf[8192];
	ssize_t n;

	if (e->bounce)
		return 1;
	if ((n = pread(msgfd, buf, sizeof(buf) - 1, 0)) <= 0)
		return 0;
	buf[n] = '\0';
	return strcasestr(buf, "\nX-O365-Sendmail-Bounce:") != NULL ||
	    strncasecmp(buf, "X-O365-Sendmail-Bounce:", 23) == 0;
}

int
sm_bounce(struct sm_queue *q, const struct sm_conf *c, const struct sm_policy *p,
    const struct sm_env *orig, int msgfd, const char *why, const struct o365_log *lg,
    struct o365_error *err)
{
	struct sm_out *o = NULL;
	struct sm_in in = { 0 };
	struct sm_hdrs h = { 0 };
	struct sm_env e;
	struct sm_policy bp = *p;
	char date[64], rnd[17], to[O365_MAX_ADDRESS + 1];
	size_t i;
	int fd = -1, r;

	memset(&e, 0, sizeof(e));
	if (is_bounce(orig, msgfd)) {
		o365_log(lg, LOG_NOTICE, "%s: a bounce failed; not bouncing it", orig->id);
		return O365_OK;
	}
	if (c->queue_bounce_to != NULL && c->queue_bounce_to[0] != '\0')
		snprintf(to, sizeof(to), "%s", c->queue_bounce_to);
	else
		snprintf(to, sizeof(to), "%s", orig->user);	/* through the aliases */
	if ((fd = memfd_create("bounce", MFD_CLOEXEC)) == -1 || (o = malloc(sizeof(*o))) == NULL) {
		r = o365_error_set(err, O365_E_NOMEM, "cannot build a bounce: %s", strerror(errno));
		goto out;
	}
	sm_out_init(o, fd);
	if (sm_rfc5322_date(time(NULL), date, sizeof(date)) != 0 || sm_random_hex(rnd, 8) != O365_OK) {
		r = o365_error_set(err, O365_E_INVAL, "cannot date a bounce");
		goto out;
	}
	r = sm_out_printf(o, "From: \"Mail Delivery System\" <%s>\nTo: %s\n"
	    "Subject: Undelivered Mail Returned to Sender\nDate: %s\n"
	    "Message-ID: <%lld.%s.bounce@%s>\nAuto-Submitted: auto-replied\n"
	    "X-O365-Sendmail-Bounce: %s\nMIME-Version: 1.0\n"
	    "Content-Type: text/plain; charset=utf-8\n\n"
	    "This is o365-sendmail on %s.\n\n"
	    "Your message (queue id %s, submitted by %s) could not be delivered to:\n\n",
	    c->from_address, to, date, (long long)time(NULL), rnd, p->fqdn, orig->id, p->fqdn,
	    orig->id, orig->user);
	for (i = 0; i < orig->rcpts.n && r == O365_OK; i++)
		r = sm_out_printf(o, "    %s\n", orig->rcpts.v[i].addr);
	if (r == O365_OK)
		r = sm_out_printf(o, "\nReason: %s\n\nIts headers follow.\n\n", why);
	if (r == O365_OK)
		r = copy_headers(msgfd, o);
	if (r == O365_OK)
		r = sm_out_flush(o);
	if (r != O365_OK || lseek(fd, 0, SEEK_SET) == -1) {
		r = o365_error_set(err, O365_E_IO, "cannot build a bounce");
		goto out;
	}
	if ((r = sm_in_init(&in, fd, 0, 65536)) != O365_OK || (r = sm_hdrs_read(&in, &h)) != O365_OK) {
		r = o365_error_set(err, r, "cannot read back a bounce");
		goto out;
	}
	e.uid = 0;
	snprintf(e.user, sizeof(e.user), "MAILER-DAEMON");
	snprintf(e.sender, sizeof(e.sender), "%s", c->from_address);
	e.bounce = 1;
	e.created = (long long)time(NULL);
	if ((r = sm_addrs_add(&e.rcpts, to, NULL)) != O365_OK) {
		r = o365_error_set(err, r, "bad bounce address %s", to);
		goto out;
	}
	bp.rewrite = SM_REWRITE_NEVER;
	if ((r = sm_queue_commit(q, &e, &h, &in, &bp, lg, err)) != O365_OK)
		goto out;
	o365_log(lg, LOG_INFO, "%s: bounce %s queued for %s", orig->id, e.id, to);
out:
	if (fd != -1)
		close(fd);
	free(o);
	sm_in_free(&in);
	sm_hdrs_free(&h);
	sm_env_free(&e);
	return r;
}
