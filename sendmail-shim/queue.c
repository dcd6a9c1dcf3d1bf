/*
 * queue.c: the spool.
 *
 *   queue.dir/            root 0755
 *     incoming/           queue user 1733: anyone may create, nobody else may list
 *       m<32 hex>         one drop: envelope block, blank line, message (0600, the submitter's)
 *       .tm<32 hex>       a drop being written (invisible to pickup)
 *     queue/              queue user 0700
 *       <id>.msg          the message as it goes on the wire (before CRLF/dots)
 *       <id>.env          the envelope; its presence commits the message
 *       .t<id>.*          being written
 *     failed/             queue user 0700: permanent failures and expired messages
 *
 * A runner locks <id>.msg (flock): <id>.env is replaced by rename when an
 * attempt is recorded, so a lock on it would not survive the update.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "flow.h"
#include "sm.h"

#define ENV_VERSION	1

void
sm_env_free(struct sm_env *e)
{
	sm_addrs_free(&e->rcpts);
	memset(e, 0, sizeof(*e));
}

/* Copy v into dst as one printable line (no CR/LF/controls). */
static void
env_clean(char *dst, size_t size, const char *v)
{
	o365_sanitize(dst, size, v, strlen(v));
}

int
sm_env_write(const struct sm_env *e, struct sm_out *out)
{
	char le[sizeof(e->last_error)], user[sizeof(e->user)], snd[sizeof(e->sender) + 64];
	size_t i;
	int r;

	env_clean(le, sizeof(le), e->last_error);
	env_clean(user, sizeof(user), e->user);
	env_clean(snd, sizeof(snd), e->sender);
	if ((r = sm_out_printf(out, "O365-Sendmail-Queue: %d\n", ENV_VERSION)) != O365_OK ||
	    (e->id[0] != '\0' && (r = sm_out_printf(out, "Id: %s\n", e->id)) != O365_OK))
		return r;
	if ((r = sm_out_printf(out, "Uid: %u\nUser: %s\n"
	    "Sender: %s\nCreated: %lld\nSize: %lld\nAttempts: %d\nNext-Try: %lld\nBounce: %d\nEight-Bit: %d\n",
	    (unsigned)e->uid, user, snd, e->created, (long long)e->size,
	    e->attempts, e->next_try, e->bounce, e->eightbit)) != O365_OK)
		return r;
	if (le[0] != '\0' && (r = sm_out_printf(out, "Last-Error: %s\n", le)) != O365_OK)
		return r;
	if (e->held && (r = sm_out_printf(out, "Held: 1\n")) != O365_OK)
		return r;
	for (i = 0; i < e->rcpts.n; i++)
		if ((r = sm_out_printf(out, "Rcpt: %s\n", e->rcpts.v[i].addr)) != O365_OK)
			return r;
	return O365_OK;
}

static int
env_num(const char *v, long long min, long long max, long long *out)
{
	char *end;
	long long n;

	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || n < min || n > max)
		return O365_E_PROTO;
	*out = n;
	return O365_OK;
}

static int
env_str(char *dst, size_t size, const char *v)
{
	int n = snprintf(dst, size, "%s", v);

	return n < 0 || (size_t)n >= size ? O365_E_PROTO : O365_OK;
}

int
sm_env_line(struct sm_env *e, const char *line, size_t len)
{
	char buf[1200], *v;
	long long n;
	size_t nl;
	int r;

	if (len >= sizeof(buf) || memchr(line, '\0', len) != NULL)
		return O365_E_PROTO;
	memcpy(buf, line, len);
	buf[len] = '\0';
	if ((v = strchr(buf, ':')) == NULL || v == buf)
		return O365_E_PROTO;
	nl = (size_t)(v - buf);
	*v++ = '\0';
	while (*v == ' ')
		v++;
	(void)nl;
	if (strcasecmp(buf, "O365-Sendmail-Queue") == 0) {
		if ((r = env_num(v, 1, 1000, &n)) != O365_OK)
			return r;
		e->version = (int)n;
	} else if (strcasecmp(buf, "Id") == 0) {
		if (strlen(v) != SM_ID_LEN || strspn(v, "0123456789abcdef") != SM_ID_LEN)
			return O365_E_PROTO;
		memcpy(e->id, v, SM_ID_LEN + 1);
	} else if (strcasecmp(buf, "Uid") == 0) {
		if ((r = env_num(v, 0, 4294967294LL, &n)) != O365_OK)
			return r;
		e->uid = (uid_t)n;
	} else if (strcasecmp(buf, "User") == 0) {
		return env_str(e->user, sizeof(e->user), v);
	} else if (strcasecmp(buf, "Sender") == 0) {
		return env_str(e->sender, sizeof(e->sender), v);
	} else if (strcasecmp(buf, "Created") == 0) {
		return env_num(v, 0, 1LL << 40, &e->created);
	} else if (strcasecmp(buf, "Next-Try") == 0) {
		return env_num(v, 0, 1LL << 40, &e->next_try);
	} else if (strcasecmp(buf, "Size") == 0) {
		if ((r = env_num(v, 0, 1LL << 40, &n)) != O365_OK)
			return r;
		e->size = (off_t)n;
	} else if (strcasecmp(buf, "Attempts") == 0) {
		if ((r = env_num(v, 0, 1000000, &n)) != O365_OK)
			return r;
		e->attempts = (int)n;
	} else if (strcasecmp(buf, "Bounce") == 0) {
		if ((r = env_num(v, 0, 1, &n)) != O365_OK)
			return r;
		e->bounce = (int)n;
	} else if (strcasecmp(buf, "Eight-Bit") == 0) {
		if ((r = env_num(v, 0, 1, &n)) != O365_OK)
			return r;
		e->eightbit = (int)n;
	} else if (strcasecmp(buf, "Held") == 0) {
		if ((r = env_num(v, 0, 1, &n)) != O365_OK)
			return r;
		e->held = (int)n;
	} else if (strcasecmp(buf, "Last-Error") == 0) {
		snprintf(e->last_error, sizeof(e->last_error), "%s", v);
	} else if (strcasecmp(buf, "Rcpt") == 0) {
		r = sm_addrs_add(&e->rcpts, v, NULL);
		return r == O365_E_NOMEM ? r : (r != O365_OK ? O365_E_PROTO : O365_OK);
	}
	return O365_OK;		/* unknown fields: a newer version's, ignored */
}

int
sm_env_parse(struct sm_env *e, const char *text, size_t len, const struct o365_log *lg,
    struct o365_error *err)
{
	const char *p = text, *end = text + len, *nl;
	size_t ll;
	int r, lineno = 0;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		ll = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		lineno++;
		if (ll > 0 && p[ll - 1] == '\r')
			ll--;
		if (ll == 0)
			break;
		if ((r = sm_env_line(e, p, ll)) == O365_E_NOMEM)
			return o365_error_set(err, r, "out of memory");
		if (r != O365_OK)
			o365_log(lg, LOG_WARNING, "envelope line %d malformed, skipped", lineno);
		p = nl != NULL ? nl + 1 : end;
	}
	if (e->version != ENV_VERSION)
		return o365_error_set(err, O365_E_PROTO, "envelope version %d not understood",
		    e->version);
	if (e->rcpts.n == 0)
		return o365_error_set(err, O365_E_PROTO, "envelope without recipients");
	return O365_OK;
}

/* ---- layout ---- */

static int
open_dir(int at, const char *name)
{
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	/* incoming/ is not readable by submitters: a path fd still lets
	 * them create and rename in it */
	if (fd == -1 && errno == EACCES)
		fd = openat(at, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd;
}

int
sm_queue_open(struct sm_queue *q, const char *dir, uid_t quid, gid_t qgid,
    struct o365_error *err)
{
	int n;

	memset(q, 0, sizeof(*q));
	q->rootfd = q->incfd = q->qfd = q->failfd = -1;
	q->quid = quid;
	q->qgid = qgid;
	n = snprintf(q->dir, sizeof(q->dir), "%s", dir);
	if (n < 0 || (size_t)n >= sizeof(q->dir))
		return o365_error_set(err, O365_E_CONFIG, "queue.dir too long");
	if ((q->rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return o365_error_set(err, errno == ENOENT ? O365_E_CONFIG : O365_E_IO,
		    "queue directory %s: %s%s", dir, strerror(errno),
		    errno == ENOENT ? " (run o365-sendmail --init as root)" : "");
	if ((q->incfd = open_dir(q->rootfd, "incoming")) == -1)
		return o365_error_set(err, O365_E_IO, "%s/incoming: %s", dir, strerror(errno));
	q->qfd = openat(q->rootfd, "queue", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	q->failfd = openat(q->rootfd, "failed", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return O365_OK;
}

void
sm_queue_close(struct sm_queue *q)
{
	if (q->rootfd != -1)
		close(q->rootfd);
	if (q->incfd != -1)
		close(q->incfd);
	if (q->qfd != -1)
		close(q->qfd);
	if (q->failfd != -1)
		close(q->failfd);
	q->rootfd = q->incfd = q->qfd = q->failfd = -1;
}

static int
init_dir(int at, const char *name, const char *shown, uid_t uid, gid_t gid, mode_t mode,
    struct o365_error *err)
{
	struct stat st;
	int fd, r = O365_OK;

	if (mkdirat(at, name, 0700) == -1 && errno != EEXIST)
		return o365_error_set(err, O365_E_IO, "cannot create %s: %s", shown, strerror(errno));
	if ((fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return o365_error_set(err, O365_E_IO, "%s: %s%s", shown, strerror(errno),
		    errno == ELOOP || errno == ENOTDIR ? " (must be a real directory)" : "");
	if (fstat(fd, &st) == -1 ||
	    ((st.st_uid != uid || st.st_gid != gid) && fchown(fd, uid, gid) == -1) ||
	    ((st.st_mode & 07777) != mode && fchmod(fd, mode) == -1))
		r = o365_error_set(err, O365_E_IO, "%s: %s", shown, strerror(errno));
	close(fd);
	return r;
}

int
sm_queue_init(const char *dir, uid_t quid, gid_t qgid, struct o365_error *err)
{
	char shown[600];
	struct stat st;
	int rootfd, r;

	if (dir[0] != '/')
		return o365_error_set(err, O365_E_CONFIG, "queue.dir %s is not an absolute path", dir);
	if (mkdir(dir, 0755) == -1 && errno != EEXIST)
		return o365_error_set(err, O365_E_IO, "cannot create %s: %s", dir, strerror(errno));
	if (lstat(dir, &st) == -1 || !S_ISDIR(st.st_mode))
		return o365_error_set(err, O365_E_CONFIG, "%s is not a directory", dir);
	if ((rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return o365_error_set(err, O365_E_IO, "%s: %s", dir, strerror(errno));
	/* the top is root's: a queue user that owned it could swap the
	 * subdirectories for links into places root then writes to */
	if (((st.st_uid != 0 || st.st_gid != 0) && fchown(rootfd, 0, 0) == -1) ||
	    ((st.st_mode & 07777) != 0755 && fchmod(rootfd, 0755) == -1)) {
		r = o365_error_set(err, O365_E_IO, "%s: %s", dir, strerror(errno));
		goto out;
	}
	snprintf(shown, sizeof(shown), "%s/incoming", dir);
	if ((r = init_dir(rootfd, "incoming", shown, quid, qgid, 01733, err)) != O365_OK)
		goto out;
	snprintf(shown, sizeof(shown), "%s/queue", dir);
	if ((r = init_dir(rootfd, "queue", shown, quid, qgid, 0700, err)) != O365_OK)
		goto out;
	snprintf(shown, sizeof(shown), "%s/failed", dir);
	if ((r = init_dir(rootfd, "failed", shown, quid, qgid, 0700, err)) != O365_OK)
		goto out;
	/* flow control state shared by every runner (flow.h) */
	snprintf(shown, sizeof(shown), "%s/state", dir);
	if ((r = sm_flow_prepare_dir(shown, quid, qgid, err)) != O365_OK)
		goto out;
	if (fsync(rootfd) == -1)
		r = o365_error_set(err, O365_E_IO, "%s: %s", dir, strerror(errno));
out:
	close(rootfd);
	return r;
}

int
sm_queue_newid(char id[SM_ID_LEN + 1])
{
	char rnd[17];
	int r;

	if ((r = sm_random_hex(rnd, 8)) != O365_OK)
		return r;
	/* time first: ids sort oldest first */
	snprintf(id, SM_ID_LEN + 1, "%010llx%s", (unsigned long long)time(NULL) & 0xffffffffffULL, rnd);
	return O365_OK;
}

/* ---- aliases ---- */

/* Look key up in an /etc/aliases style file: "name: a, b" with continuation
 * lines starting with white space and '#' comments.  Fills val. */
static int
aliases_file_lookup(const char *path, const char *key, char *val, size_t size,
    const struct o365_log *lg)
{
	FILE *fp;
	char line[4096];
	size_t kl = strlen(key), o = 0;
	int found = 0, n;

	if ((fp = fopen(path, "re")) == NULL) {
		o365_log(lg, LOG_WARNING, "aliases_file %s: %s", path, strerror(errno));
		return 0;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (found) {
			if (line[0] == ' ' || line[0] == '\t') {
				n = snprintf(val + o, size - o, ",%s", line);
				if (n > 0 && (size_t)n < size - o)
					o += (size_t)n;
				continue;
			}
			break;
		}
		if (line[0] == '#' || line[0] == ' ' || line[0] == '\t')
			continue;
		if (strncasecmp(line, key, kl) == 0 && (line[kl] == ':' ||
		    ((line[kl] == ' ' || line[kl] == '\t') && strchr(line + kl, ':') != NULL &&
		    strspn(line + kl, " \t") == (size_t)(strchr(line + kl, ':') - (line + kl))))) {
			n = snprintf(val, size, "%s", strchr(line + kl, ':') + 1);
			o = n > 0 && (size_t)n < size ? (size_t)n : 0;
			found = 1;
		}
	}
	fclose(fp);
	return found;
}

static const char *
alias_lookup(const struct sm_policy *p, const char *key, char *buf, size_t size,
    const struct o365_log *lg)
{
	const struct o365_conf_pair *a;

	for (a = p->aliases; a != NULL && a->name != NULL; a++)
		if (strcasecmp(a->name, key) == 0)
			return a->value;
	if (p->aliases_file != NULL && p->aliases_file[0] != '\0' &&
	    aliases_file_lookup(p->aliases_file, key, buf, size, lg))
		return buf;
	return NULL;
}

static int
addrs_has(const struct sm_addrs *a, const char *addr)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		if (strcasecmp(a->v[i].addr, addr) == 0)
			return 1;
	return 0;
}

static int
resolve(const struct sm_policy *p, const char *rcpt, struct sm_addrs *out,
    const struct o365_log *lg, int depth)
{
	struct sm_addrs targets = { 0 };
	char local[O365_MAX_ADDRESS + 1], buf[4096], q[O365_MAX_ADDRESS + 1];
	const char *val, *t;
	size_t i;
	int r = O365_OK, n;

	if (!sm_addr_is_local(rcpt, p->fqdn)) {
		if (addrs_has(out, rcpt))
			return O365_OK;
		return sm_addrs_add(out, rcpt, NULL);
	}
	snprintf(local, sizeof(local), "%.*s", (int)strcspn(rcpt, "@"), rcpt);
	val = depth < 8 ? alias_lookup(p, local, buf, sizeof(buf), lg) : NULL;
	if (val == NULL && depth == 0) {
		/* the catch-all takes what no alias names */
		if ((val = alias_lookup(p, "default", buf, sizeof(buf), lg)) == NULL)
			val = alias_lookup(p, "*", buf, sizeof(buf), lg);
	}
	if (val != NULL) {
		if ((r = sm_addrs_parse(&targets, val, strlen(val))) != O365_OK)
			goto out;
		for (i = 0; i < targets.n; i++) {
			t = targets.v[i].addr;
			if (t[0] == '|' || t[0] == '/' || strncmp(t, ":include:", 9) == 0) {
				o365_log(lg, LOG_WARNING, "alias %s: %s not supported by a relay, skipped",
				    local, t);
				continue;
			}
			if (strcasecmp(t, local) == 0 || strcasecmp(t, rcpt) == 0) {
				/* "root: root" ends the chain: qualify it */
				n = snprintf(q, sizeof(q), "%s@%s", local,
				    p->default_domain ? p->default_domain : p->fqdn);
				if (n > 0 && (size_t)n < sizeof(q) && !addrs_has(out, q) &&
				    (r = sm_addrs_add(out, q, NULL)) != O365_OK)
					goto out;
				continue;
			}
			if ((r = resolve(p, t, out, lg, depth + 1)) != O365_OK)
				goto out;
		}
		goto out;
	}
	if (p->default_domain != NULL && p->default_domain[0] != '\0') {
		n = snprintf(q, sizeof(q), "%s@%s", local, p->default_domain);
		if (n < 0 || (size_t)n >= sizeof(q)) {
			r = O365_E_TOOLONG;
			goto out;
		}
		if (!addrs_has(out, q))
			r = sm_addrs_add(out, q, NULL);
	} else if (!addrs_has(out, rcpt)) {
		r = sm_addrs_add(out, rcpt, NULL);
	}
out:
	sm_addrs_free(&targets);
	return r;
}

int
sm_resolve_rcpt(const struct sm_policy *p, const char *rcpt, struct sm_addrs *out,
    const struct o365_log *lg)
{
	return resolve(p, rcpt, out, lg, 0);
}

/* ---- intake into the queue ---- */

static int
write_err(struct sm_out *o, struct o365_error *err, const char *what, int r)
{
	if (r == O365_E_TOOLONG)
		return o365_error_set(err, O365_E_TOOLONG, "message larger than %ld bytes",
		    (long)SM_MAX_MESSAGE);
	if (o->err != 0)
		return o365_error_set(err, o->err == ENOSPC || o->err == EDQUOT ? O365_E_TEMP : O365_E_IO,
		    "cannot write %s: %s", what, strerror(o->err));
	return o365_error_set(err, r, "cannot write %s", what);
}

static int
own(int fd, const struct sm_queue *q, struct o365_error *err)
{
	if (geteuid() != 0 || geteuid() == q->quid)
		return O365_OK;
	if (fchown(fd, q->quid, q->qgid) == -1)
		return o365_error_set(err, O365_E_IO, "cannot chown a queue file: %s", strerror(errno));
	return O365_OK;
}

/* tests only: stop or kill the committing process at a point of the commit */
static int	commit_fault_at;
static int	commit_fault_stop;

void
sm_queue_fault(int at, int stop)
{
	commit_fault_at = at;
	commit_fault_stop = stop;
}

static void
commit_point(int at)
{
	if (commit_fault_at == at)
		(void)raise(commit_fault_stop ? SIGSTOP : SIGKILL);
}

static int
sync_err(int fd, const char *name, struct o365_error *err)
{
	int e;

	if (fsync(fd) == 0)
		return O365_OK;
	e = errno;
	return o365_error_set(err, e == ENOSPC || e == EDQUOT ? O365_E_TEMP : O365_E_IO,
	    "cannot fsync %s: %s", name, strerror(e));
}

/*
 * Three flushes: both files are written and fsynced under their temporary
 * names, renamed (.msg first), and one fsync of queue/ makes both names
 * durable.  A crash leaves nothing, .t files (swept after a day), a .msg
 * without .env (never listed; swept) or, if the file system kept the second
 * rename but not the first, a .env without .msg (never delivered: the
 * runner locks the .msg; swept).  The .msg stays flocked until its .env is
 * in place, so a sweep never takes it for a half pair while we commit.
 */
int
sm_queue_commit(struct sm_queue *q, struct sm_env *e, struct sm_hdrs *h, struct sm_in *in,
    const struct sm_policy *p, const struct o365_log *lg, struct o365_error *err)
{
	struct sm_addrs res = { 0 };
	struct sm_file mf, ef;
	struct sm_out *o = NULL;
	char name[SM_ID_LEN + 8];
	size_t i;
	int r, rewritten, named = 0;

	mf.fd = ef.fd = -1;
	mf.tmp[0] = ef.tmp[0] = '\0';
	if (q->qfd == -1)
		return o365_error_set(err, O365_E_IO, "%s/queue: not accessible", q->dir);
	for (i = 0; i < e->rcpts.n; i++)
		if ((r = sm_resolve_rcpt(p, e->rcpts.v[i].addr, &res, lg)) != O365_OK) {
			r = o365_error_set(err, r, "recipient %s: cannot resolve", e->rcpts.v[i].addr);
			goto out;
		}
	sm_addrs_free(&e->rcpts);
	e->rcpts = res;
	memset(&res, 0, sizeof(res));
	if (e->rcpts.n == 0) {
		r = o365_error_set(err, O365_E_INVAL, "no recipients left after aliasing");
		goto out;
	}
	if ((r = sm_hdrs_rewrite(h, p->rewrite, p->relay, p->fqdn, &rewritten)) != O365_OK) {
		r = o365_error_set(err, r, "cannot rewrite the headers");
		goto out;
	}
	if (e->id[0] == '\0' && (r = sm_queue_newid(e->id)) != O365_OK) {
		r = o365_error_set(err, r, "no randomness for a queue id");
		goto out;
	}
	if ((o = malloc(sizeof(*o))) == NULL) {
		r = o365_error_set(err, O365_E_NOMEM, "out of memory");
		goto out;
	}
	snprintf(name, sizeof(name), "%s.msg", e->id);
	if ((r = sm_file_create(&mf, q->qfd, name, 0600, err)) != O365_OK)
		goto out;
	if (flock(mf.fd, LOCK_EX | LOCK_NB) == -1) {	/* a new file: nobody else has it */
		r = o365_error_set(err, O365_E_IO, "cannot lock %s: %s", mf.tmp, strerror(errno));
		goto out;
	}
	sm_out_init(o, mf.fd);
	if ((r = sm_hdrs_write(h, o)) != O365_OK || (r = sm_copy_body(in, o, SM_MAX_MESSAGE)) != O365_OK ||
	    (r = sm_out_flush(o)) != O365_OK) {
		if (r == O365_E_IO && o->err == 0 && in->err != 0)
			r = o365_error_set(err, O365_E_IO, "cannot read the message: %s", strerror(in->err));
		else
			r = write_err(o, err, name, r);
		goto out;
	}
	e->size = o->total;
	e->eightbit = o->saw8bit;
	if ((r = own(mf.fd, q, err)) != O365_OK || (r = sync_err(mf.fd, mf.tmp, err)) != O365_OK)
		goto out;
	if (e->created == 0)
		e->created = (long long)time(NULL);
	snprintf(name, sizeof(name), "%s.env", e->id);
	if ((r = sm_file_create(&ef, q->qfd, name, 0600, err)) != O365_OK)
		goto out;
	sm_out_init(o, ef.fd);
	if ((r = sm_env_write(e, o)) != O365_OK || (r = sm_out_flush(o)) != O365_OK) {
		r = write_err(o, err, name, r);
		goto out;
	}
	if ((r = own(ef.fd, q, err)) != O365_OK || (r = sync_err(ef.fd, ef.tmp, err)) != O365_OK)
		goto out;
	if (renameat(q->qfd, mf.tmp, q->qfd, mf.name) == -1) {
		r = o365_error_set(err, O365_E_IO, "cannot rename to %s: %s", mf.name, strerror(errno));
		goto out;
	}
	named = 1;
	commit_point(SM_FAULT_AFTER_MSG);
	if (renameat(q->qfd, ef.tmp, q->qfd, ef.name) == -1) {
		r = o365_error_set(err, O365_E_IO, "cannot rename to %s: %s", ef.name, strerror(errno));
		goto out;
	}
	named = 2;
	mf.tmp[0] = ef.tmp[0] = '\0';		/* nothing left to abort */
	close(mf.fd);				/* the lock: a complete pair now */
	close(ef.fd);
	mf.fd = ef.fd = -1;
	commit_point(SM_FAULT_AFTER_PAIR);
	/* both new names at once; not known to be durable: take them back
	 * rather than risk a duplicate when the caller tries again */
	if (fsync(q->qfd) == -1) {
		r = o365_error_set(err, errno == ENOSPC || errno == EDQUOT ? O365_E_TEMP : O365_E_IO,
		    "cannot sync the directory of %s: %s", ef.name, strerror(errno));
		goto out;
	}
	r = O365_OK;
out:
	if (r != O365_OK) {
		if (named == 2)
			(void)unlinkat(q->qfd, ef.name, 0);
		if (named >= 1)
			(void)unlinkat(q->qfd, mf.name, 0);
		if (named == 1)
			mf.tmp[0] = '\0';
		sm_file_abort(&ef);
		sm_file_abort(&mf);
	}
	free(o);
	sm_addrs_free(&res);
	return r;
}

int
sm_queue_drop(struct sm_queue *q, const struct sm_env *e, struct sm_hdrs *h, struct sm_in *in,
    struct o365_error *err)
{
	struct sm_file f;
	struct sm_out *o;
	char name[40];
	int r;

	if ((o = malloc(sizeof(*o))) == NULL)
		return o365_error_set(err, O365_E_NOMEM, "out of memory");
	/* 128 random bits: nobody can guess, let alone list, another's drop */
	name[0] = 'm';
	if ((r = sm_random_hex(name + 1, 16)) != O365_OK) {
		free(o);
		return o365_error_set(err, r, "no randomness for a file name");
	}
	if ((r = sm_file_create(&f, q->incfd, name, 0600, err)) != O365_OK) {
		free(o);
		return r;
	}
	f.use_syncfs = 1;
	sm_out_init(o, f.fd);
	if ((r = sm_env_write(e, o)) != O365_OK || (r = sm_out_write(o, "\n", 1)) != O365_OK ||
	    (r = sm_hdrs_write(h, o)) != O365_OK || (r = sm_copy_body(in, o, SM_MAX_MESSAGE)) != O365_OK ||
	    (r = sm_out_flush(o)) != O365_OK) {
		if (r == O365_E_IO && o->err == 0 && in->err != 0)
			r = o365_error_set(err, O365_E_IO, "cannot read the message: %s", strerror(in->err));
		else
			r = write_err(o, err, "the message", r);
		sm_file_abort(&f);
		free(o);
		return r;
	}
	free(o);
	return sm_file_commit(&f, err);
}

/* ---- pickup ---- */

static int
pickup_one(struct sm_queue *q, const char *name, const struct sm_policy *p,
    const struct o365_log *lg, struct o365_error *err)
{
	struct sm_in in = { 0 };
	struct sm_hdrs h = { 0 };
	struct sm_env e;
	struct passwd *pw;
	struct stat st;
	char *env = NULL;
	const char *piece;
	size_t len, elen = 0;
	int fd, r, bol, remove = 1;

	memset(&e, 0, sizeof(e));
	fd = openat(q->incfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd == -1 && errno == ENOENT) {
		remove = 0;		/* another runner took it */
		r = O365_E_INVAL;
		goto out;
	}
	if (fd == -1) {
		o365_log(lg, LOG_WARNING, "pickup: %s: %s, removed", name,
		    errno == ELOOP ? "a symbolic link" : strerror(errno));
		r = O365_E_INVAL;
		goto out;
	}
	/* two runners picking up at once: one takes the drop, the other
	 * skips it (lock busy, or unlinked by the time it got the lock) */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (flock(fd, LOCK_EX | LOCK_NB) == -1 || fstat(fd, &st) == -1 || st.st_nlink == 0)) {
		remove = 0;
		r = O365_E_INVAL;
		goto out;
	}
	/* the kernel, not the file, says who submitted it; a link to someone
	 * else's file or a special file is refused */
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
	    st.st_size > SM_MAX_MESSAGE + SM_MAX_ENV) {
		o365_log(lg, LOG_WARNING, "pickup: %s: not a plain file with one link within %ld bytes "
		    "(uid %u), removed", name, (long)SM_MAX_MESSAGE, (unsigned)st.st_uid);
		r = O365_E_INVAL;
		goto out;
	}
	if ((r = sm_in_init(&in, fd, 0, 65536)) != O365_OK || (env = malloc(SM_MAX_ENV)) == NULL) {
		r = o365_error_set(err, O365_E_NOMEM, "out of memory");
		remove = 0;
		goto out;
	}
	for (;;) {
		if ((r = sm_in_piece(&in, 2048, &piece, &len, &bol)) != 1 || elen + len > SM_MAX_ENV) {
			o365_log(lg, LOG_WARNING, "pickup: %s: no complete envelope, removed", name);
			r = O365_E_INVAL;
			goto out;
		}
		if ((len == 1 && piece[0] == '\n') || (len == 2 && piece[0] == '\r'))
			break;
		memcpy(env + elen, piece, len);
		elen += len;
	}
	if ((r = sm_env_parse(&e, env, elen, lg, err)) != O365_OK) {
		o365_log(lg, LOG_WARNING, "pickup: %s: %s, removed", name, err->why);
		goto out;
	}
	e.uid = st.st_uid;
	e.id[0] = '\0';
	e.attempts = 0;
	e.next_try = 0;
	e.bounce = 0;		/* only the runner makes bounces */
	e.created = (long long)time(NULL);
	if ((pw = getpwuid(st.st_uid)) != NULL)
		snprintf(e.user, sizeof(e.user), "%s", pw->pw_name);
	else
		snprintf(e.user, sizeof(e.user), "%u", (unsigned)st.st_uid);
	if ((r = sm_hdrs_read(&in, &h)) != O365_OK) {
		o365_log(lg, LOG_WARNING, "pickup: %s: bad header block, removed", name);
		goto out;
	}
	if ((r = sm_queue_commit(q, &e, &h, &in, p, lg, err)) != O365_OK) {
		if (r == O365_E_TEMP || r == O365_E_IO || r == O365_E_NOMEM) {
			remove = 0;	/* our trouble, not the drop's: try again later */
			goto out;
		}
		o365_log(lg, LOG_WARNING, "pickup: %s: %s, removed", name, err->why);
		goto out;
	}
	o365_log(lg, LOG_INFO, "%s: uid=%u user=%s sender=<%s> nrcpt=%zu size=%lld queued", e.id,
	    (unsigned)e.uid, e.user, e.sender, e.rcpts.n, (long long)e.size);
out:
	if (remove && unlinkat(q->incfd, name, 0) == -1 && errno != ENOENT)
		o365_log(lg, LOG_ERR, "pickup: cannot remove %s: %s", name, strerror(errno));
	if (fd != -1)
		close(fd);
	free(env);
	sm_in_free(&in);
	sm_hdrs_free(&h);
	sm_env_free(&e);
	return r;
}

int
sm_queue_pickup(struct sm_queue *q, const struct sm_policy *p, const struct o365_log *lg,
    struct o365_error *err)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd, r, moved = 0, ret = O365_OK;

	if (q->qfd == -1)
		return o365_error_set(err, O365_E_IO, "%s/queue: not accessible", q->dir);
	if ((fd = openat(q->incfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    (d = fdopendir(fd)) == NULL) {
		r = errno;
		if (fd != -1)
			close(fd);
		return o365_error_set(err, O365_E_IO, "%s/incoming: %s", q->dir, strerror(r));
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (de->d_name[0] == '.') {
			/* a drop whose writer died (kill -9, full disk) */
			if (fstatat(q->incfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    st.st_mtime < time(NULL) - 86400)
				(void)unlinkat(q->incfd, de->d_name, 0);
			continue;
		}
		if (de->d_name[0] != 'm' || strlen(de->d_name) != 33 ||
		    strspn(de->d_name + 1, "0123456789abcdef") != 32) {
			o365_log(lg, LOG_WARNING, "pickup: unexpected %s in incoming/, removed", de->d_name);
			(void)unlinkat(q->incfd, de->d_name, 0);
			continue;
		}
		r = pickup_one(q, de->d_name, p, lg, err);
		if (r == O365_OK)
			moved++;
		else if (r == O365_E_TEMP || r == O365_E_IO || r == O365_E_NOMEM) {
			ret = r;	/* disk full: leave the rest where it is */
			break;
		}
	}
	closedir(d);
	return ret == O365_OK ? moved : ret;
}

/* ---- the queue proper ---- */

int
sm_queue_read_env(int dirfd, const char *id, struct sm_env *e, const struct o365_log *lg,
    struct o365_error *err)
{
	char name[SM_ID_LEN + 8], *buf;
	ssize_t n;
	size_t got = 0;
	int fd, r;

	memset(e, 0, sizeof(*e));
	snprintf(name, sizeof(name), "%s.env", id);
	/* root's mailq reads files the queue user controls: no FIFO may hang it */
	if ((fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) == -1)
		return o365_error_set(err, errno == ENOENT ? O365_E_INVAL : O365_E_IO, "%s: %s",
		    name, strerror(errno));
	if ((buf = malloc(SM_MAX_ENV)) == NULL) {
		close(fd);
		return o365_error_set(err, O365_E_NOMEM, "out of memory");
	}
	while (got < SM_MAX_ENV) {
		n = read(fd, buf + got, SM_MAX_ENV - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	r = sm_env_parse(e, buf, got, lg, err);
	free(buf);
	if (r == O365_OK && strcmp(e->id, id) != 0)
		r = o365_error_set(err, O365_E_PROTO, "%s: Id field does not match", name);
	return r;
}

int
sm_queue_write_env(int dirfd, const struct sm_env *e, uid_t quid, gid_t qgid,
    struct o365_error *err)
{
	struct sm_queue q = { .quid = quid, .qgid = qgid };
	struct sm_file f;
	struct sm_out *o;
	char name[SM_ID_LEN + 8];
	int r;

	if ((o = malloc(sizeof(*o))) == NULL)
		return o365_error_set(err, O365_E_NOMEM, "out of memory");
	snprintf(name, sizeof(name), "%s.env", e->id);
	if ((r = sm_file_create(&f, dirfd, name, 0600, err)) != O365_OK) {
		free(o);
		return r;
	}
	sm_out_init(o, f.fd);
	if ((r = sm_env_write(e, o)) != O365_OK || (r = sm_out_flush(o)) != O365_OK ||
	    (r = own(f.fd, &q, err)) != O365_OK) {
		if (r != O365_OK && err != NULL && err->code == O365_OK)
			r = write_err(o, err, name, r);
		sm_file_abort(&f);
		free(o);
		return r;
	}
	free(o);
	return sm_file_commit(&f, err);
}

static int
id_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void
sm_queue_list_free(char **ids, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

int
sm_queue_list(int dirfd, char ***ids_out, size_t *n_out, struct o365_error *err)
{
	struct dirent *de;
	char **v = NULL, **nv;
	size_t n = 0, cap = 0, len;
	DIR *d;
	int fd;

	*ids_out = NULL;
	*n_out = 0;
	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return o365_error_set(err, O365_E_IO, "cannot list the queue: %s", strerror(errno));
	}
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len != SM_ID_LEN + 4 || strcmp(de->d_name + SM_ID_LEN, ".env") != 0 ||
		    strspn(de->d_name, "0123456789abcdef") != SM_ID_LEN)
			continue;
		if (n == cap) {
			if ((nv = realloc(v, (cap ? cap * 2 : 64) * sizeof(*v))) == NULL)
				goto nomem;
			v = nv;
			cap = cap ? cap * 2 : 64;
		}
		if ((v[n] = strndup(de->d_name, SM_ID_LEN)) == NULL)
			goto nomem;
		n++;
	}
	closedir(d);
	if (n > 0)
		qsort(v, n, sizeof(*v), id_cmp);
	*ids_out = v;
	*n_out = n;
	return O365_OK;
nomem:
	closedir(d);
	sm_queue_list_free(v, n);
	return o365_error_set(err, O365_E_NOMEM, "out of memory");
}

/* The other half of a pair: "<id>.env" for "<id>.msg" and the reverse. */
static int
half_exists(int dirfd, const char *name, const char *other)
{
	char buf[SM_ID_LEN + 8];

	snprintf(buf, sizeof(buf), "%.*s%s", SM_ID_LEN, name, other);
	return faccessat(dirfd, buf, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

/* A .msg without .env, unless a commit (or a runner) holds its lock. */
static int
msg_orphaned(int dirfd, const char *name)
{
	int fd, r;

	if (half_exists(dirfd, name, ".env"))
		return 0;		/* a queued message */
	if ((fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return 0;
	r = flock(fd, LOCK_EX | LOCK_NB) == 0 && !half_exists(dirfd, name, ".env");
	close(fd);		/* a committer that takes it now finds no file to rename over */
	return r;
}

int
sm_queue_sweep(int dirfd, const struct o365_log *lg)
{
	struct dirent *de;
	struct stat st;
	time_t now = time(NULL);
	DIR *d;
	size_t len;
	int fd, n = 0, half;

	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		half = len == SM_ID_LEN + 4 && strspn(de->d_name, "0123456789abcdef") == SM_ID_LEN &&
		    (strcmp(de->d_name + SM_ID_LEN, ".msg") == 0 ||
		    strcmp(de->d_name + SM_ID_LEN, ".env") == 0);
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		if (de->d_name[0] == '.' && de->d_name[1] == 't') {
			/* a writer died between create and rename, or is slow */
			if (st.st_mtime > now - SM_SWEEP_TMP_AGE)
				continue;
		} else if (half && st.st_mtime <= now - SM_SWEEP_HALF_AGE) {
			/* a crash between (or across) the two renames of a commit */
			if (de->d_name[SM_ID_LEN + 1] == 'm' ? !msg_orphaned(dirfd, de->d_name) :
			    half_exists(dirfd, de->d_name, ".msg"))
				continue;
		} else {
			continue;
		}
		if (unlinkat(dirfd, de->d_name, 0) == 0) {
			o365_log(lg, LOG_NOTICE, "removed %s: left over by an interrupted writer", de->d_name);
			n++;
		}
	}
	closedir(d);
	return n;
}

int
sm_queue_lock(int dirfd, const char *id, int *fd_out, struct o365_error *err)
{
	struct stat st;
	char name[SM_ID_LEN + 8];
	int fd;

	*fd_out = -1;
	snprintf(name, sizeof(name), "%s.msg", id);
	if ((fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return O365_OK;
		return o365_error_set(err, O365_E_IO, "%s: %s", name, strerror(errno));
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		close(fd);
		if (errno == EWOULDBLOCK)
			return O365_OK;		/* another runner has it */
		return o365_error_set(err, O365_E_IO, "lock %s: %s", name, strerror(errno));
	}
	/* it may have been delivered and removed between open and lock */
	snprintf(name, sizeof(name), "%s.env", id);
	if (fstat(fd, &st) == -1 || st.st_nlink == 0 ||
	    faccessat(dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == -1) {
		close(fd);
		return O365_OK;
	}
	*fd_out = fd;
	return O365_OK;
}

int
sm_queue_runner_lock(const struct sm_queue *q, int *fd_out)
{
	char path[600];
	int fd, n;

	*fd_out = -1;
	n = snprintf(path, sizeof(path), "%s/%s", q->dir, SM_RUNNER_LOCK);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -1;
	if ((fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600)) == -1)
		return -1;
	if (geteuid() == 0 && q->quid != 0 && fchown(fd, q->quid, q->qgid) == -1) {
		close(fd);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		n = errno == EWOULDBLOCK ? 0 : -1;
		close(fd);
		return n;
	}
	*fd_out = fd;
	return 1;
}

int
sm_queue_runner_busy(const struct sm_queue *q)
{
	int fd, r;

	if ((r = sm_queue_runner_lock(q, &fd)) == 1)
		close(fd);
	return r == 0;
}

int
sm_queue_remove(int dirfd, const char *id, struct o365_error *err)
{
	char name[SM_ID_LEN + 8];

	snprintf(name, sizeof(name), "%s.env", id);
	if (unlinkat(dirfd, name, 0) == -1 && errno != ENOENT)
		return o365_error_set(err, O365_E_IO, "cannot remove %s: %s", name, strerror(errno));
	snprintf(name, sizeof(name), "%s.msg", id);
	if (unlinkat(dirfd, name, 0) == -1 && errno != ENOENT)
		return o365_error_set(err, O365_E_IO, "cannot remove %s: %s", name, strerror(errno));
	(void)fsync(dirfd);
	return O365_OK;
}

int
sm_queue_fail(struct sm_queue *q, const char *id, struct o365_error *err)
{
	char name[SM_ID_LEN + 8];

	if (q->failfd == -1)
		return o365_error_set(err, O365_E_IO, "%s/failed: not accessible", q->dir);
	snprintf(name, sizeof(name), "%s.msg", id);
	if (renameat(q->qfd, name, q->failfd, name) == -1)
		return o365_error_set(err, O365_E_IO, "cannot move %s to failed/: %s", name,
		    strerror(errno));
	snprintf(name, sizeof(name), "%s.env", id);
	if (renameat(q->qfd, name, q->failfd, name) == -1)
		return o365_error_set(err, O365_E_IO, "cannot move %s to failed/: %s", name,
		    strerror(errno));
	(void)fsync(q->failfd);
	(void)fsync(q->qfd);
	return O365_OK;
}

/* "age 2h05m state queued attempts 3 next in 12m" and the last reply. */
static int
print_state(struct sm_out *o, const struct sm_env *e, int failed)
{
	long long now = (long long)time(NULL), age = now - e->created, nx = e->next_try - now;
	char next[96];
	int r;

	if (age < 0)
		age = 0;
	if (failed)
		snprintf(next, sizeof(next), "never");
	else if (e->held)
		snprintf(next, sizeof(next), "never (held: o365-sendmail --release %s)", e->id);
	else if (nx <= 0)
		snprintf(next, sizeof(next), "now");
	else
		snprintf(next, sizeof(next), "in %lldh%02lldm%02llds", nx / 3600, nx / 60 % 60, nx % 60);
	r = sm_out_printf(o, "%58sstate %s, age %lldh%02lldm, attempts %d, next attempt %s\n", "",
	    failed ? "failed" : e->held ? "held" : "queued", age / 3600, age / 60 % 60, e->attempts, next);
	if (r == O365_OK && e->last_error[0] != '\0')
		r = sm_out_printf(o, "%58slast reply: %s\n", "", e->last_error);
	return r;
}

static int print_dir(struct sm_queue *q, int dirfd, int failed, int outfd, struct o365_error *err);

int
sm_queue_print(struct sm_queue *q, int outfd, struct o365_error *err)
{
	if (q->qfd == -1)
		return o365_error_set(err, O365_E_IO, "%s/queue: permission denied (mailq is for root)",
		    q->dir);
	return print_dir(q, q->qfd, 0, outfd, err);
}

int
sm_queue_print_failed(struct sm_queue *q, int outfd, struct o365_error *err)
{
	if (q->failfd == -1)
		return o365_error_set(err, O365_E_IO, "%s/failed: permission denied (root only)",
		    q->dir);
	return print_dir(q, q->failfd, 1, outfd, err);
}

static int
print_dir(struct sm_queue *q, int dirfd, int failed, int outfd, struct o365_error *err)
{
	struct sm_out *o;
	struct sm_env e;
	struct o365_error e2;
	char **ids = NULL, when[64];
	size_t n = 0, i, k;
	time_t t;
	struct tm tm;
	int r;

	(void)q;
	if ((r = sm_queue_list(dirfd, &ids, &n, err)) != O365_OK)
		return r;
	if ((o = malloc(sizeof(*o))) == NULL) {
		sm_queue_list_free(ids, n);
		return o365_error_set(err, O365_E_NOMEM, "out of memory");
	}
	sm_out_init(o, outfd);
	if (n == 0)
		r = sm_out_printf(o, failed ? "No failed messages\n" : "Mail queue is empty\n");
	else
		r = sm_out_printf(o, "%-26s %10s %-19s  %s\n", "Queue ID", "Size", "Arrival", "Sender/Recipient");
	for (i = 0; i < n && r == O365_OK; i++) {
		o365_error_clear(&e2);
		if (sm_queue_read_env(dirfd, ids[i], &e, NULL, &e2) != O365_OK) {
			sm_env_free(&e);
			continue;	/* gone meanwhile, or being replaced */
		}
		t = (time_t)e.created;
		if (localtime_r(&t, &tm) == NULL || strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm) == 0)
			snprintf(when, sizeof(when), "%lld", e.created);
		r = sm_out_printf(o, "%-26s %10lld %-19s  <%s> uid=%u user=%s%s\n", e.id, (long long)e.size,
		    when, e.sender, (unsigned)e.uid, e.user, e.bounce ? " (bounce)" : "");
		if (r == O365_OK)
			r = print_state(o, &e, failed);
		for (k = 0; k < e.rcpts.n && r == O365_OK; k++)
			r = sm_out_printf(o, "%58s%s\n", "", e.rcpts.v[k].addr);
		sm_env_free(&e);
	}
	if (r == O365_OK && n > 0)
		r = sm_out_printf(o, "-- %zu message%s\n", n, n == 1 ? "" : "s");
	if (r == O365_OK)
		r = sm_out_flush(o);
	free(o);
	sm_queue_list_free(ids, n);
	if (r != O365_OK)
		return o365_error_set(err, O365_E_IO, "cannot print the queue");
	return O365_OK;
}
