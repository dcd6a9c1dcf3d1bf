/*
 * flow.c: host-wide flow control per relay mailbox (see flow.h).
 *
 * Why files and flock(): queue runners are separate processes (the timer,
 * -q by hand, -odi deliveries) that share nothing else; a flock() dies with
 * its process, so a crashed runner can neither keep a connection slot nor
 * leave the state locked.  Why minute buckets for the 24 h budget: up to
 * 43,200 messages a day would make a per-message list too big to rewrite
 * for every message; 1,440 buckets keep the file under 40 KB and count a
 * recipient at most 60 s longer than Exchange does (the safe side).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "flow.h"
#include "sm.h"

#define FLOW_BUCKET	60				/* seconds per recipient bucket */
#define FLOW_NBUCKETS	(SM_FLOW_WINDOW / FLOW_BUCKET + 2)
#define FLOW_MAX_FILE	(1024 * 1024)			/* the state file, bytes */
#define FLOW_MAX_KEY	200				/* the escaped mailbox in file names */
#define FLOW_MAX_SLOTS	64
#define FLOW_QUOTA_WAIT	3600				/* quota hit with nothing recorded */

struct flow_bucket {
	long long	t;		/* start of the minute */
	unsigned long	n;		/* recipients */
};

struct sm_flow {
	struct sm_flow_limits	 lim;
	int			 dirfd;
	uid_t			 duid;		/* the directory's owner: root gives */
	gid_t			 dgid;		/* new files to it (the queue user) */
	int			 lockfd;
	int			 slotfd;
	int			 slot;
	char			 key[FLOW_MAX_KEY + 1];
	long long		(*now)(void *);
	void			*now_ctx;
	/* the state while the lock is held */
	long long		 hold_until;
	int			 held;
	unsigned		 hold_tries;	/* failed tries of this hold (the slow schedule) */
	char			 hold_reason[256];
	long long		 quota_until;
	long long		*m;		/* send times in the last minute, ascending */
	size_t			 nm;
	struct flow_bucket	 d[FLOW_NBUCKETS];	/* ascending */
	size_t			 nd;
	int			 dirty;		/* load changed something: save it */
};

void
sm_flow_limits_default(struct sm_flow_limits *l)
{
	l->connections = SM_FLOW_CONNECTIONS;
	l->per_minute = SM_FLOW_PER_MINUTE;
	l->day_recipients = SM_FLOW_DAY_RECIPIENTS;
	l->max_recipients = SM_FLOW_MAX_RECIPIENTS;
}

int
sm_flow_prepare_dir(const char *dir, uid_t uid, gid_t gid, struct o365_error *err)
{
	struct stat st;
	int fd, r = O365_OK;

	if (mkdir(dir, 0700) == -1 && errno != EEXIST)
		return o365_error_set(err, O365_E_IO, "%s: %s", dir, strerror(errno));
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return o365_error_set(err, O365_E_IO, "%s: %s", dir, strerror(errno));
	if (fstat(fd, &st) == -1)
		r = o365_error_set(err, O365_E_IO, "%s: %s", dir, strerror(errno));
	else if (((st.st_uid != uid || st.st_gid != gid) && fchown(fd, uid, gid) == -1) ||
	    ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700) == -1))
		r = o365_error_set(err, O365_E_IO, "%s: %s", dir, strerror(errno));
	close(fd);
	return r;
}

static long long
flow_time(void *ctx)
{
	(void)ctx;
	return (long long)time(NULL);
}

void
sm_flow_set_clock(struct sm_flow *f, long long (*now)(void *ctx), void *ctx)
{
	f->now = now != NULL ? now : flow_time;
	f->now_ctx = ctx;
}

long long
sm_clock_now(const struct sm_clock *c)
{
	if (c != NULL && c->now != NULL)
		return c->now(c->ctx);
	return (long long)time(NULL);
}

void
sm_clock_sleep(const struct sm_clock *c, long long s)
{
	struct timespec ts;

	if (s <= 0)
		return;
	if (c != NULL && c->sleep != NULL) {
		c->sleep(c->ctx, s);
		return;
	}
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = 0;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* The mailbox as a file name: lower case, [a-z0-9.@_+-] kept, the rest %XX. */
static int
flow_key(const char *mailbox, char *key, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	unsigned char c;

	for (; *mailbox != '\0'; mailbox++) {
		c = (unsigned char)*mailbox;
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '@' || c == '_' ||
		    c == '+' || c == '-' || (c == '.' && o > 0)) {
			if (o + 1 >= size)
				return -1;
			key[o++] = (char)c;
		} else {
			if (o + 3 >= size)
				return -1;
			key[o++] = '%';
			key[o++] = hex[c >> 4];
			key[o++] = hex[c & 15];
		}
	}
	key[o] = '\0';
	return o > 0 ? 0 : -1;
}

/* A file root creates (mailq, --probe, a runner before it drops its
 * privileges) must stay usable by the queue user who owns the directory. */
static int
flow_give(const struct sm_flow *f, int fd)
{
	struct stat st;

	if (geteuid() != 0 || f->duid == 0)
		return 0;
	if (fstat(fd, &st) == -1)
		return -1;
	if ((st.st_uid != f->duid || st.st_gid != f->dgid) && fchown(fd, f->duid, f->dgid) == -1)
		return -1;
	return 0;
}

static int
flow_open_file(struct sm_flow *f, const char *suffix, int *fd_out, struct o365_error *err)
{
	char name[FLOW_MAX_KEY + 32];
	int n;

	n = snprintf(name, sizeof(name), "%s%s", f->key, suffix);
	if (n < 0 || (size_t)n >= sizeof(name))
		return o365_error_set(err, O365_E_TOOLONG, "flow state name too long");
	*fd_out = openat(f->dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (*fd_out == -1)
		return o365_error_set(err, O365_E_IO, "flow state %s: %s", name, strerror(errno));
	if (flow_give(f, *fd_out) != 0) {
		close(*fd_out);
		*fd_out = -1;
		return o365_error_set(err, O365_E_IO, "flow state %s: %s", name, strerror(errno));
	}
	return O365_OK;
}

int
sm_flow_open(const char *dir, const char *mailbox, const struct sm_flow_limits *lim,
    struct sm_flow **out, struct o365_error *err)
{
	struct sm_flow *f = NULL;
	int r;

	*out = NULL;
	if (lim->connections < 1 || lim->connections > FLOW_MAX_SLOTS)
		return o365_error_set(err, O365_E_CONFIG, "flow.connections must be 1..%d",
		    FLOW_MAX_SLOTS);
	if (lim->per_minute < 1 || lim->per_minute > 10000)
		return o365_error_set(err, O365_E_CONFIG, "flow.per_minute must be 1..10000");
	if (lim->day_recipients < 1 || lim->day_recipients > 10000000)
		return o365_error_set(err, O365_E_CONFIG, "flow.day_recipients must be 1..10000000");
	if (lim->max_recipients < 1 || lim->max_recipients > SM_MAX_RCPTS)
		return o365_error_set(err, O365_E_CONFIG, "flow.max_recipients must be 1..%d",
		    SM_MAX_RCPTS);
	if (mailbox == NULL || mailbox[0] == '\0')
		return o365_error_set(err, O365_E_INVAL, "flow control needs the mailbox name");
	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    (f->m = calloc(lim->per_minute, sizeof(*f->m))) == NULL) {
		free(f);
		return o365_error_set(err, O365_E_NOMEM, "out of memory");
	}
	f->lim = *lim;
	f->dirfd = f->lockfd = f->slotfd = -1;
	f->slot = -1;
	sm_flow_set_clock(f, NULL, NULL);
	if (flow_key(mailbox, f->key, sizeof(f->key)) != 0) {
		r = o365_error_set(err, O365_E_TOOLONG, "mailbox name too long for a state file");
		goto fail;
	}
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		r = o365_error_set(err, O365_E_IO, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	if ((f->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		r = o365_error_set(err, O365_E_IO, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	{
		struct stat st;

		if (fstat(f->dirfd, &st) == -1) {
			r = o365_error_set(err, O365_E_IO, "%s: %s", dir, strerror(errno));
			goto fail;
		}
		f->duid = st.st_uid;
		f->dgid = st.st_gid;
	}
	if ((r = flow_open_file(f, ".lock", &f->lockfd, err)) != O365_OK)
		goto fail;
	*out = f;
	return O365_OK;
fail:
	sm_flow_close(&f);
	return r;
}

void
sm_flow_close(struct sm_flow **fp)
{
	struct sm_flow *f = *fp;

	if (f == NULL)
		return;
	sm_flow_slot_release(f);
	if (f->lockfd != -1)
		close(f->lockfd);
	if (f->dirfd != -1)
		close(f->dirfd);
	free(f->m);
	free(f);
	*fp = NULL;
}

/* ---- connection slots ---- */

int
sm_flow_slot_take(struct sm_flow *f, int *slot_out, struct o365_error *err)
{
	char suffix[16];
	unsigned i;
	int fd, r;

	*slot_out = f->slot;
	if (f->slot != -1)
		return O365_OK;
	for (i = 0; i < f->lim.connections; i++) {
		snprintf(suffix, sizeof(suffix), ".slot%u", i);
		if ((r = flow_open_file(f, suffix, &fd, err)) != O365_OK)
			return r;
		while ((r = flock(fd, LOCK_EX | LOCK_NB)) == -1 && errno == EINTR)
			;
		if (r == 0) {
			f->slotfd = fd;
			f->slot = (int)i;
			*slot_out = f->slot;
			return O365_OK;
		}
		r = errno;
		close(fd);
		if (r != EWOULDBLOCK)
			return o365_error_set(err, O365_E_IO, "flow slot %u: %s", i, strerror(r));
	}
	return O365_OK;		/* all busy: *slot_out is -1 */
}

void
sm_flow_slot_release(struct sm_flow *f)
{
	if (f == NULL || f->slotfd == -1)
		return;
	close(f->slotfd);	/* drops the flock */
	f->slotfd = -1;
	f->slot = -1;
}

int
sm_flow_slot(const struct sm_flow *f)
{
	return f->slot;
}

/* ---- the state file ---- */

static int
flow_lock(struct sm_flow *f, struct o365_error *err)
{
	while (flock(f->lockfd, LOCK_EX) == -1)
		if (errno != EINTR)
			return o365_error_set(err, O365_E_IO, "flow lock: %s", strerror(errno));
	return O365_OK;
}

static void
flow_unlock(struct sm_flow *f)
{
	(void)flock(f->lockfd, LOCK_UN);
}

static int
cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

static int
cmp_bucket(const void *a, const void *b)
{
	const struct flow_bucket *x = a, *y = b;

	return x->t < y->t ? -1 : x->t > y->t;
}

static int
parse_ll(const char *s, char **end, long long *out)
{
	errno = 0;
	*out = strtoll(s, end, 10);
	return errno == 0 && *end != s && *out >= 0;
}

/* Add a bucket (t already a bucket start) while loading or recording. */
static void
flow_add_bucket(struct sm_flow *f, long long t, unsigned long n)
{
	size_t i;

	for (i = 0; i < f->nd; i++)
		if (f->d[i].t == t) {
			f->d[i].n += n;
			return;
		}
	if (f->nd < FLOW_NBUCKETS) {
		f->d[f->nd].t = t;
		f->d[f->nd].n = n;
		f->nd++;
		qsort(f->d, f->nd, sizeof(f->d[0]), cmp_bucket);
	}
}

static void
flow_add_send(struct sm_flow *f, long long t)
{
	if (f->nm == f->lim.per_minute) {	/* keep the newest */
		memmove(f->m, f->m + 1, (f->nm - 1) * sizeof(f->m[0]));
		f->nm--;
	}
	f->m[f->nm++] = t;
	qsort(f->m, f->nm, sizeof(f->m[0]), cmp_ll);
}

/* One line of the state file.  Malformed lines are ignored: the state is
 * advisory and a damaged file must not stop the queue. */
static void
flow_parse_line(struct sm_flow *f, char *line, long long now)
{
	long long t, n;
	char *end;

	if (strncmp(line, "m ", 2) == 0) {
		if (parse_ll(line + 2, &end, &t) && *end == '\0') {
			if (t > now) {		/* the clock went back */
				t = now;	/* saved so: the wait ends */
				f->dirty = 1;
			}
			if (t > now - SM_FLOW_RATE_WINDOW)
				flow_add_send(f, t);
		}
	} else if (strncmp(line, "d ", 2) == 0) {
		if (parse_ll(line + 2, &end, &t) && *end == ' ' && parse_ll(end + 1, &end, &n) &&
		    *end == '\0' && n > 0 && n <= 100000000) {
			if (t > now) {
				t = now;
				f->dirty = 1;
			}
			t -= t % FLOW_BUCKET;
			if (t + FLOW_BUCKET + SM_FLOW_WINDOW > now)
				flow_add_bucket(f, t, (unsigned long)n);
		}
	} else if (strncmp(line, "quota ", 6) == 0) {
		if (parse_ll(line + 6, &end, &t) && *end == '\0')
			f->quota_until = t;
	} else if (strncmp(line, "holdtries ", 10) == 0) {
		if (parse_ll(line + 10, &end, &t) && *end == '\0' && t <= 1000000)
			f->hold_tries = (unsigned)t;
	} else if (strncmp(line, "hold ", 5) == 0) {
		if (parse_ll(line + 5, &end, &t) && (*end == ' ' || *end == '\0')) {
			f->held = 1;
			f->hold_until = t;
			/* back into mailq and the log: printable whatever the file holds */
			o365_sanitize(f->hold_reason, sizeof(f->hold_reason), *end == ' ' ? end + 1 : "",
			    *end == ' ' ? strlen(end + 1) : 0);
		}
	}
}

/* Read the state file (caller holds the lock). */
static int
flow_load(struct sm_flow *f, long long now, struct o365_error *err)
{
	char name[FLOW_MAX_KEY + 16], *buf = NULL, *p, *nl;
	size_t len = 0;
	ssize_t n;
	int fd, r = O365_OK;

	f->held = 0;
	f->hold_tries = 0;
	f->hold_until = f->quota_until = 0;
	f->hold_reason[0] = '\0';
	f->nm = f->nd = 0;
	f->dirty = 0;
	snprintf(name, sizeof(name), "%s.flow", f->key);
	if ((fd = openat(f->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		if (errno == ENOENT)
			return O365_OK;
		return o365_error_set(err, O365_E_IO, "flow state: %s", strerror(errno));
	}
	if ((buf = malloc(FLOW_MAX_FILE + 1)) == NULL) {
		r = o365_error_set(err, O365_E_NOMEM, "out of memory");
		goto out;
	}
	while (len < FLOW_MAX_FILE && (n = read(fd, buf + len, FLOW_MAX_FILE - len)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			r = o365_error_set(err, O365_E_IO, "flow state: %s", strerror(errno));
			goto out;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (strncmp(buf, "o365-flow 1\n", 12) != 0)
		goto out;		/* not ours or damaged: start afresh */
	for (p = buf + 12; *p != '\0'; p = nl + 1) {
		if ((nl = strchr(p, '\n')) == NULL)
			break;		/* a cut last line */
		*nl = '\0';
		flow_parse_line(f, p, now);
	}
out:
	free(buf);
	close(fd);
	return r;
}

/* Replace the state file atomically (caller holds the lock). */
static int
flow_save(struct sm_flow *f, long long now, struct o365_error *err)
{
	char name[FLOW_MAX_KEY + 16], tmp[FLOW_MAX_KEY + 16];
	struct sm_out out;
	size_t i;
	int fd, r = O365_OK;

	snprintf(name, sizeof(name), "%s.flow", f->key);
	snprintf(tmp, sizeof(tmp), "%s.flow.tmp", f->key);
	fd = openat(f->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1)
		return o365_error_set(err, O365_E_IO, "flow state: %s", strerror(errno));
	sm_out_init(&out, fd);
	if (flow_give(f, fd) != 0) {
		out.err = errno;
		goto fail;
	}
	if (sm_out_printf(&out, "o365-flow 1\n") != O365_OK)
		goto fail;
	if (f->held && sm_out_printf(&out, "hold %lld %s\n", f->hold_until, f->hold_reason) != O365_OK)
		goto fail;
	if (f->held && f->hold_tries > 0 &&
	    sm_out_printf(&out, "holdtries %u\n", f->hold_tries) != O365_OK)
		goto fail;
	if (f->quota_until > now && sm_out_printf(&out, "quota %lld\n", f->quota_until) != O365_OK)
		goto fail;
	for (i = 0; i < f->nm; i++)
		if (sm_out_printf(&out, "m %lld\n", f->m[i]) != O365_OK)
			goto fail;
	for (i = 0; i < f->nd; i++)
		if (sm_out_printf(&out, "d %lld %lu\n", f->d[i].t, f->d[i].n) != O365_OK)
			goto fail;
	if (sm_out_flush(&out) != O365_OK)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		out.err = errno;
		goto fail;
	}
	fd = -1;
	if (renameat(f->dirfd, tmp, f->dirfd, name) == -1) {
		out.err = errno;
		goto fail;
	}
	return O365_OK;
fail:
	r = o365_error_set(err, O365_E_IO, "flow state: %s", strerror(out.err != 0 ? out.err : EIO));
	if (fd != -1)
		close(fd);
	(void)unlinkat(f->dirfd, tmp, 0);
	return r;
}

/* Seconds until nrcpt fits; 0 when it fits now.  *why the longest wait's. */
static long long
flow_wait(const struct sm_flow *f, unsigned nrcpt, long long now, enum sm_flow_wait *why)
{
	unsigned long used = 0, freed = 0;
	long long wait = 0, w;
	size_t i;

	*why = SM_FLOW_GO;
	if (f->quota_until > now) {
		wait = f->quota_until - now;
		*why = SM_FLOW_QUOTA;
	}
	if (f->nm >= f->lim.per_minute) {
		/* the oldest of the last per_minute sends must be a minute old */
		w = f->m[f->nm - f->lim.per_minute] + SM_FLOW_RATE_WINDOW - now;
		if (w > wait) {
			wait = w;
			*why = SM_FLOW_RATE;
		}
	}
	for (i = 0; i < f->nd; i++)
		used += f->d[i].n;
	if (used > 0 && used + nrcpt > f->lim.day_recipients) {
		w = 0;
		for (i = 0; i < f->nd; i++) {
			freed += f->d[i].n;
			w = f->d[i].t + FLOW_BUCKET + SM_FLOW_WINDOW - now;
			/* an oversized transaction waits for an empty window */
			if (used - freed + nrcpt <= f->lim.day_recipients || used == freed)
				break;
		}
		if (w > wait) {
			wait = w;
			*why = SM_FLOW_DAY;
		}
	}
	if (wait <= 0)
		*why = SM_FLOW_GO;
	return wait > 0 ? wait : 0;
}

static int
flow_reserve(struct sm_flow *f, unsigned nrcpt, int record, long long *wait_out,
    enum sm_flow_wait *why_out, struct o365_error *err)
{
	long long now = f->now(f->now_ctx);
	enum sm_flow_wait why = SM_FLOW_GO;
	int r;

	*wait_out = 0;
	if (why_out != NULL)
		*why_out = SM_FLOW_GO;
	if ((r = flow_lock(f, err)) != O365_OK)
		return r;
	if ((r = flow_load(f, now, err)) != O365_OK)
		goto out;
	*wait_out = flow_wait(f, nrcpt, now, &why);
	if (why_out != NULL)
		*why_out = why;
	if (*wait_out == 0 && record) {
		flow_add_send(f, now);
		if (nrcpt > 0)
			flow_add_bucket(f, now - now % FLOW_BUCKET, nrcpt);
		r = flow_save(f, now, err);
	} else if (f->dirty) {
		r = flow_save(f, now, err);
	}
out:
	flow_unlock(f);
	return r;
}

int
sm_flow_reserve(struct sm_flow *f, unsigned nrcpt, long long *wait_out, struct o365_error *err)
{
	return flow_reserve(f, nrcpt, 1, wait_out, NULL, err);
}

int
sm_flow_reserve_why(struct sm_flow *f, unsigned nrcpt, long long *wait_out,
    enum sm_flow_wait *why_out, struct o365_error *err)
{
	return flow_reserve(f, nrcpt, 1, wait_out, why_out, err);
}

int
sm_flow_check_why(struct sm_flow *f, unsigned nrcpt, long long *wait_out,
    enum sm_flow_wait *why_out, struct o365_error *err)
{
	return flow_reserve(f, nrcpt, 0, wait_out, why_out, err);
}

int
sm_flow_check(struct sm_flow *f, unsigned nrcpt, long long *wait_out, struct o365_error *err)
{
	return flow_reserve(f, nrcpt, 0, wait_out, NULL, err);
}

int
sm_flow_quota_hit(struct sm_flow *f, long long *until_out, struct o365_error *err)
{
	long long now = f->now(f->now_ctx), until;
	int r;

	if ((r = flow_lock(f, err)) != O365_OK)
		return r;
	if ((r = flow_load(f, now, err)) != O365_OK)
		goto out;
	until = f->nd > 0 ? f->d[0].t + FLOW_BUCKET + SM_FLOW_WINDOW : now + FLOW_QUOTA_WAIT;
	if (until <= now)
		until = now + FLOW_QUOTA_WAIT;
	if (until > f->quota_until)
		f->quota_until = until;
	if (until_out != NULL)
		*until_out = f->quota_until;
	r = flow_save(f, now, err);
out:
	flow_unlock(f);
	return r;
}

int
sm_flow_hold(struct sm_flow *f, long long until, const char *reason, int *first_out,
    struct o365_error *err)
{
	long long now = f->now(f->now_ctx);
	int r;

	if (first_out != NULL)
		*first_out = 0;
	if ((r = flow_lock(f, err)) != O365_OK)
		return r;
	if ((r = flow_load(f, now, err)) != O365_OK)
		goto out;
	if (first_out != NULL)
		*first_out = !f->held;
	if (!f->held)
		f->hold_tries = 1;
	f->held = 1;
	f->hold_until = until;
	/* one line, printable: it goes back into the state file and logs */
	o365_sanitize(f->hold_reason, sizeof(f->hold_reason), reason != NULL ? reason : "",
	    reason != NULL ? strlen(reason) : 0);
	r = flow_save(f, now, err);
out:
	flow_unlock(f);
	return r;
}

int
sm_flow_hold_backoff(struct sm_flow *f, long long first, long long max, int restart,
    const char *reason, int *first_out, long long *until_out, struct o365_error *err)
{
	long long now = f->now(f->now_ctx), delay;
	unsigned i;
	int r;

	if (first_out != NULL)
		*first_out = 0;
	if (until_out != NULL)
		*until_out = 0;
	if (first < 1)
		first = 1;
	if (max < first)
		max = first;
	if ((r = flow_lock(f, err)) != O365_OK)
		return r;
	if ((r = flow_load(f, now, err)) != O365_OK)
		goto out;
	if (first_out != NULL)
		*first_out = !f->held;
	/* tries of this hold so far, this one included */
	if (!f->held || restart || f->hold_tries == 0)
		f->hold_tries = 1;
	else if (f->hold_tries < 1000000)
		f->hold_tries++;
	for (delay = first, i = 1; i < f->hold_tries && delay < max; i++)
		delay *= 2;
	if (delay > max)
		delay = max;
	f->held = 1;
	f->hold_until = now + delay;
	if (until_out != NULL)
		*until_out = f->hold_until;
	o365_sanitize(f->hold_reason, sizeof(f->hold_reason), reason != NULL ? reason : "",
	    reason != NULL ? strlen(reason) : 0);
	r = flow_save(f, now, err);
out:
	flow_unlock(f);
	return r;
}

int
sm_flow_held(struct sm_flow *f, long long *until_out, char *reason, size_t size,
    struct o365_error *err)
{
	long long now = f->now(f->now_ctx);
	int r;

	*until_out = 0;
	if (size > 0)
		reason[0] = '\0';
	if ((r = flow_lock(f, err)) != O365_OK)
		return r;
	if ((r = flow_load(f, now, err)) == O365_OK && f->held) {
		*until_out = f->hold_until > 0 ? f->hold_until : 1;
		if (size > 0)
			snprintf(reason, size, "%s", f->hold_reason);
	}
	flow_unlock(f);
	return r;
}

int
sm_flow_quota_clear(struct sm_flow *f, int *was_out, struct o365_error *err)
{
	long long now = f->now(f->now_ctx);
	int r;

	if (was_out != NULL)
		*was_out = 0;
	if ((r = flow_lock(f, err)) != O365_OK)
		return r;
	if ((r = flow_load(f, now, err)) != O365_OK)
		goto out;
	if (f->quota_until > now) {
		if (was_out != NULL)
			*was_out = 1;
		f->quota_until = 0;
		r = flow_save(f, now, err);
	}
out:
	flow_unlock(f);
	return r;
}

int
sm_flow_release(struct sm_flow *f, int *was_held_out, struct o365_error *err)
{
	long long now = f->now(f->now_ctx);
	int r;

	if (was_held_out != NULL)
		*was_held_out = 0;
	if ((r = flow_lock(f, err)) != O365_OK)
		return r;
	if ((r = flow_load(f, now, err)) != O365_OK)
		goto out;
	if (was_held_out != NULL)
		*was_held_out = f->held;
	if (f->held) {
		f->held = 0;
		f->hold_until = 0;
		f->hold_reason[0] = '\0';
		r = flow_save(f, now, err);
	}
out:
	flow_unlock(f);
	return r;
}

/* ---- splitting recipient lists ---- */

size_t
sm_flow_batches(size_t nrcpt, size_t max)
{
	if (nrcpt == 0)
		return 0;
	if (max == 0)
		return 1;
	return (nrcpt + max - 1) / max;
}

void
sm_flow_batch(size_t nrcpt, size_t max, size_t i, size_t *first_out, size_t *n_out)
{
	if (max == 0)
		max = nrcpt;
	*first_out = i * max;
	if (*first_out >= nrcpt) {
		*first_out = nrcpt;
		*n_out = 0;
		return;
	}
	*n_out = nrcpt - *first_out < max ? nrcpt - *first_out : max;
}
