/*
 * xoauth_child.c: the token fetch of o365-sendmail-runner, the runner that
 * delivers and links neither libcurl nor json-c (they cost 4.7 MB of RSS
 * just to load, more than the rest of the runner).  For each token it
 * forks a child that loads the token module (tokmod.c,
 * SM_OAUTH_MODULE_PATH), runs the token store there (cache, refresh,
 * rotation under its lock) and hands back the token, its expiry and what
 * failed over a pipe, then exits.  The child inherits the client secret in
 * memory: nothing is read again after the runner dropped root.
 *
 * --check and -v print the token status from such a child too.  The
 * certificate credential and --oauth-login need the certificate parser or
 * the token store in the process itself: for them
 * the runner still executes o365-sendmail-runner-oauth (main.c), so the
 * functions below that say so are not reached.  Linked before the core
 * library, these definitions keep xoauth_store.o (and with it libcurl and
 * json-c) out of the program.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "o365/limits.h"
#include "o365/secret.h"
#include "xoauth.h"

#ifndef SM_OAUTH_MODULE_PATH
#error "SM_OAUTH_MODULE_PATH: the token module this runner loads in its child"
#endif

/* What the child writes, then the token's len bytes. */
struct tok_reply {
	int			 r;
	long long		 exp;
	size_t			 len;
	struct o365_oauth_error	 oerr;
	struct o365_error	 err;
};

typedef int (*tokmod_get_fn)(const struct o365_tokstore_cfg *, int, const struct o365_deadline *,
    const struct o365_log *, struct o365_secret **, time_t *, struct o365_oauth_error *,
    struct o365_error *);

static int
none(struct o365_error *err)
{
	return o365_error_set(err, O365_E_CONFIG,
	    "this part of auth.mechanism \"xoauth2\" is handled by o365-sendmail-runner-oauth");
}

int
sm_xoauth_load_key(struct sm_xoauth *x, struct o365_error *err)
{
	(void)x;
	return none(err);
}

void
sm_xoauth_free_key(struct sm_xoauth *x)
{
	(void)x;
}

int
sm_xoauth_login(struct sm_xoauth *x, gid_t qgid, FILE *fp, const struct o365_log *lg,
    struct o365_oauth_error *oerr, struct o365_error *err)
{
	(void)x;
	(void)qgid;
	(void)fp;
	(void)lg;
	memset(oerr, 0, sizeof(*oerr));
	return none(err);
}

static int
write_all(int fd, const void *p, size_t len)
{
	const char *c = p;
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, c, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

/* What the child runs: a token, or the --check / -v lines on fp. */
struct tok_job {
	const struct sm_xoauth		*x;
	int				 force;
	const struct o365_deadline	*dl;
	const struct o365_log		*lg;
	FILE				*fp;	/* set: the status */
};

typedef int (*tokmod_status_fn)(const struct sm_xoauth *, FILE *, struct o365_error *);

/* The child: load the module, run the job, answer on fd, exit. */
static void __attribute__((noreturn))
child(const struct tok_job *j, int fd)
{
	struct tok_reply rep;
	struct o365_secret *tok = NULL;
	tokmod_status_fn status;
	tokmod_get_fn get;
	time_t exp = 0;
	void *h;
	int ok;

	memset(&rep, 0, sizeof(rep));
	if ((h = dlopen(SM_OAUTH_MODULE_PATH, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		rep.r = o365_error_set(&rep.err, O365_E_CONFIG, "cannot load the token module %s: %s",
		    SM_OAUTH_MODULE_PATH, dlerror());
	} else if ((*(void **)&get = dlsym(h, "sm_tokmod_get")) == NULL ||
	    (*(void **)&status = dlsym(h, "sm_tokmod_status")) == NULL) {
		rep.r = o365_error_set(&rep.err, O365_E_CONFIG, "%s is not the token module",
		    SM_OAUTH_MODULE_PATH);
	} else if (j->fp != NULL) {
		rep.r = status(j->x, j->fp, &rep.err);
		if (fflush(j->fp) == EOF && rep.r == O365_OK)
			rep.r = o365_error_set(&rep.err, O365_E_IO, "cannot write the status");
	} else {
		rep.r = get(&j->x->cfg, j->force, j->dl, j->lg, &tok, &exp, &rep.oerr, &rep.err);
		rep.exp = (long long)exp;
		if (rep.r == O365_OK)
			rep.len = tok->len;
	}
	ok = write_all(fd, &rep, sizeof(rep)) == 0 &&
	    (rep.len == 0 || write_all(fd, tok->data, tok->len) == 0);
	o365_secret_free(&tok);
	_exit(ok ? 0 : 1);
}

/*
 * The child keeps dl itself (the token store does); a little longer before
 * it is killed, so it is not stopped between a rotated refresh token's
 * answer and storing it.
 */
#define CHILD_GRACE_MS	5000

/* Read up to size bytes from fd until EOF, within dl and the grace. */
static int
read_reply(int fd, unsigned char *buf, size_t size, size_t *got, const struct o365_deadline *dl,
    struct o365_error *err)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct o365_deadline until;
	unsigned char one;
	ssize_t n;
	int ms;

	*got = 0;
	ms = o365_deadline_left_ms(dl);
	o365_deadline_in(&until, ms > INT_MAX - CHILD_GRACE_MS ? INT_MAX : ms + CHILD_GRACE_MS);
	for (;;) {
		if ((ms = o365_deadline_left_ms(&until)) <= 0)
			return o365_error_set(err, O365_E_TIMEOUT, "the token fetch timed out");
		if ((n = poll(&p, 1, ms)) == -1 && errno != EINTR)
			return o365_error_set(err, O365_E_IO, "poll: %s", strerror(errno));
		if (n <= 0)
			continue;
		/* full: one more byte must be the end */
		if ((n = *got < size ? read(fd, buf + *got, size - *got) : read(fd, &one, 1)) == -1) {
			if (errno == EINTR)
				continue;
			return o365_error_set(err, O365_E_IO, "read from the token child: %s",
			    strerror(errno));
		}
		if (n == 0)
			return O365_OK;
		if (*got == size)
			return o365_error_set(err, O365_E_TOOLONG, "the token child said too much");
		*got += (size_t)n;
	}
}

/* Run j in a child; its reply (and token, len bytes) into buf. */
static int
run_child(const struct tok_job *j, unsigned char *buf, size_t size, size_t *got,
    struct o365_error *err)
{
	pid_t pid;
	int fds[2], r, st = 0;

	*got = 0;
	if (pipe2(fds, O_CLOEXEC) == -1)
		return o365_error_set(err, O365_E_IO, "pipe: %s", strerror(errno));
	(void)fflush(NULL);	/* nothing buffered twice */
	if ((pid = fork()) == -1) {
		r = o365_error_set(err, O365_E_IO, "fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return r;
	}
	if (pid == 0) {
		close(fds[0]);
		child(j, fds[1]);
	}
	close(fds[1]);
	r = read_reply(fds[0], buf, size, got, j->dl, err);
	close(fds[0]);
	if (r != O365_OK)
		(void)kill(pid, SIGKILL);	/* ours, and stuck: nothing left to wait for */
	while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
		;
	if (r == O365_OK && (*got < sizeof(struct tok_reply) || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 0))
		r = o365_error_set(err, O365_E_IO, "the token child failed (status %d)", st);
	return r;
}

int
sm_xoauth_token(struct sm_xoauth *x, int force, const struct o365_deadline *dl,
    const struct o365_log *lg, struct o365_secret **tok, time_t *exp,
    struct o365_oauth_error *oerr, struct o365_error *err)
{
	unsigned char buf[sizeof(struct tok_reply) + O365_MAX_TOKEN];
	struct tok_job j = { .x = x, .force = force, .dl = dl, .lg = lg };
	struct tok_reply rep;
	size_t got;
	int r;

	*tok = NULL;
	*exp = 0;
	if ((r = run_child(&j, buf, sizeof(buf), &got, err)) != O365_OK)
		goto out;
	memcpy(&rep, buf, sizeof(rep));
	*oerr = rep.oerr;
	if (rep.r != O365_OK) {
		*err = rep.err;
		r = rep.r;
		goto out;
	}
	if (rep.len == 0 || rep.len > O365_MAX_TOKEN || got != sizeof(rep) + rep.len) {
		r = o365_error_set(err, O365_E_IO, "the token child answered %zu bytes", got);
		goto out;
	}
	if ((r = o365_secret_dup((const char *)buf + sizeof(rep), rep.len, tok)) != O365_OK) {
		r = o365_error_set(err, r, "out of memory");
		goto out;
	}
	*exp = (time_t)rep.exp;
out:
	o365_cleanse(buf, sizeof(buf));
	return r;
}

#define STATUS_DEADLINE_MS	(30 * 1000)	/* files only, no network */

int
sm_xoauth_print_status(const struct sm_xoauth *x, FILE *fp, struct o365_error *err)
{
	unsigned char buf[sizeof(struct tok_reply)];
	struct o365_deadline dl;
	struct tok_job j = { .x = x, .fp = fp, .dl = &dl };
	struct tok_reply rep;
	size_t got;
	int r;

	o365_deadline_in(&dl, STATUS_DEADLINE_MS);
	if ((r = run_child(&j, buf, sizeof(buf), &got, err)) != O365_OK)
		return r;
	memcpy(&rep, buf, sizeof(rep));
	if (rep.r != O365_OK)
		*err = rep.err;
	return rep.r;
}
