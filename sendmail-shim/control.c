/*
 * control.c: queue control for root.  Every change takes the message's
 * lock first (the one the runner holds while sending), so a message is
 * never changed under a runner's feet.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "flow.h"

const char *
sm_ctl_done_name(enum sm_ctl_op op)
{
	switch (op) {
	case SM_CTL_HOLD:	return "held";
	case SM_CTL_RELEASE:	return "released";
	case SM_CTL_DELETE:	return "deleted";
	case SM_CTL_RETRY:	return "scheduled now";
	}
	return "?";
}

static int
open_flow(const struct sm_queue *q, const struct sm_conf *c, struct sm_flow **f,
    struct o365_error *err)
{
	struct sm_flow_limits lim;
	char dir[600];
	int n;

	*f = NULL;
	if (c->auth_user == NULL || c->auth_user[0] == '\0')
		return o365_error_set(err, O365_E_CONFIG, "auth.user is not set");
	n = snprintf(dir, sizeof(dir), "%s/state", q->dir);
	if (n < 0 || (size_t)n >= sizeof(dir))
		return o365_error_set(err, O365_E_CONFIG, "queue.dir is too long");
	if (access(dir, F_OK) == -1)
		return O365_OK;		/* never ran: no state, no hold */
	sm_conf_flow_limits(c, &lim);
	return sm_flow_open(dir, c->auth_user, &lim, f, err);
}

void
sm_ctl_print_hold(const struct sm_queue *q, const struct sm_conf *c, FILE *out)
{
	struct o365_error err;
	struct sm_flow *f = NULL;
	char reason[512], when[64];
	long long until = 0;
	struct tm tm;
	time_t t;

	o365_error_clear(&err);
	if (open_flow(q, c, &f, &err) != O365_OK || f == NULL)
		return;
	if (sm_flow_held(f, &until, reason, sizeof(reason), &err) == O365_OK && until != 0) {
		t = (time_t)until;
		if (localtime_r(&t, &tm) == NULL ||
		    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm) == 0)
			snprintf(when, sizeof(when), "%lld", until);
		fprintf(out, "-- the queue is held (next try %s; o365-sendmail --release ALL or -q "
		    "tries now): %s\n", when, reason);
	}
	if (sm_flow_check(f, 1, &until, &err) == O365_OK && until > 0)
		fprintf(out, "-- flow limits (flow.*, or the submission quota): the next message may "
		    "go in %llds (--retry ALL ends a quota wait)\n", until);
	sm_flow_close(&f);
}

/* One message, locked. 1 changed, 0 busy, < 0 error. */
static int
apply_one(struct sm_queue *q, enum sm_ctl_op op, const char *id, FILE *out,
    const struct o365_log *lg, struct o365_error *err)
{
	struct sm_env e;
	int fd = -1, r;

	memset(&e, 0, sizeof(e));
	if ((r = sm_queue_lock(q->qfd, id, &fd, err)) != O365_OK)
		return r;
	if (fd == -1) {
		if (faccessat(q->qfd, id, F_OK, 0) == -1) {
			char env[SM_ID_LEN + 8];

			snprintf(env, sizeof(env), "%s.env", id);
			if (faccessat(q->qfd, env, F_OK, 0) == -1) {
				o365_error_set(err, O365_E_INVAL, "%s: no such message in the queue", id);
				return O365_E_INVAL;
			}
		}
		fprintf(out, "%s: being sent right now; not changed\n", id);
		return 0;
	}
	if ((r = sm_queue_read_env(q->qfd, id, &e, lg, err)) != O365_OK)
		goto out;
	switch (op) {
	case SM_CTL_HOLD:
		e.held = 1;
		break;
	case SM_CTL_RELEASE:
		e.held = 0;
		e.next_try = 0;
		break;
	case SM_CTL_RETRY:
		e.next_try = 0;
		break;
	case SM_CTL_DELETE:
		break;
	}
	if (op == SM_CTL_DELETE)
		r = sm_queue_remove(q->qfd, id, err);
	else
		r = sm_queue_write_env(q->qfd, &e, q->quid, q->qgid, err);
	if (r == O365_OK) {
		o365_log(lg, LOG_NOTICE, "%s: %s by root (sender=<%s>)", id, sm_ctl_done_name(op),
		    e.sender);
		fprintf(out, "%s: %s\n", id, sm_ctl_done_name(op));
	}
out:
	sm_env_free(&e);
	close(fd);
	return r == O365_OK ? 1 : r;
}

int
sm_ctl_apply(struct sm_queue *q, const struct sm_conf *c, enum sm_ctl_op op, const char *id,
    FILE *out, const struct o365_log *lg, struct o365_error *err)
{
	struct sm_flow *f = NULL;
	char **ids = NULL;
	size_t n = 0, i;
	int r, was = 0, count = 0;

	if (q->qfd == -1)
		return o365_error_set(err, O365_E_IO, "%s/queue: permission denied (root only)", q->dir);
	if (strcmp(id, "ALL") != 0) {
		if (strlen(id) != SM_ID_LEN || strspn(id, "0123456789abcdef") != SM_ID_LEN)
			return o365_error_set(err, O365_E_INVAL, "%s: not a queue id", id);
		return apply_one(q, op, id, out, lg, err);
	}
	if ((r = sm_queue_list(q->qfd, &ids, &n, err)) != O365_OK)
		return r;
	for (i = 0; i < n; i++) {
		r = apply_one(q, op, ids[i], out, lg, err);
		if (r > 0)
			count++;
		else if (r < 0 && err->code != O365_E_INVAL)
			fprintf(out, "%s: %s\n", ids[i], err->why);
	}
	sm_queue_list_free(ids, n);
	if (op == SM_CTL_RELEASE || op == SM_CTL_RETRY) {
		/* the queue hold ends too: the admin says the problem is fixed */
		o365_error_clear(err);
		if (open_flow(q, c, &f, err) != O365_OK)
			return err->code;
		if (f != NULL && sm_flow_release(f, &was, err) != O365_OK) {
			sm_flow_close(&f);
			return err->code;
		}
		if (was) {
			o365_log(lg, LOG_NOTICE, "queue hold released by root");
			fprintf(out, "the queue hold is released\n");
		}
		if (f != NULL && op == SM_CTL_RETRY && sm_flow_quota_clear(f, &was, err) != O365_OK) {
			sm_flow_close(&f);
			return err->code;
		}
		sm_flow_close(&f);
		if (op == SM_CTL_RETRY && was) {
			o365_log(lg, LOG_NOTICE, "quota wait ended by root");
			fprintf(out, "the quota wait is ended\n");
		}
	}
	return count;
}
