/*
 * tokstore.c: cached access tokens for one relay identity, and refresh token
 * rotation that two concurrent queue runners cannot lose.
 *
 * Why a lock and not just atomic files: Entra ID rotates refresh tokens on
 * use, and our fake (like the real service for reuse detection) refuses a
 * refresh token that was already spent.  Runner A reads RT1, runner B reads
 * RT1, A gets RT2 and stores it, B's request with RT1 fails: a lost rotation.
 * So read-cache / refresh / write-back happen under one exclusive flock, and
 * the runner that waited re-reads the cache (and the refresh token file)
 * after it got the lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "o365/limits.h"
#include "o365/log.h"
#include "o365/secret.h"
#include "o365/tokstore.h"

#define TOK_CACHE_NAME		"access-token"
#define TOK_LOCK_NAME		"token.lock"
#define TOK_CACHE_MAGIC		"o365-tokstore 1\n"
#define TOK_MAX_HEADER		2048	/* authority, tenant, client, grant, identity, scope */
#define TOK_MAX_CACHE		(TOK_MAX_HEADER + O365_MAX_TOKEN + 64)
#define TOK_LOCK_POLL_MS	20	/* flock cannot be bounded by a deadline: poll it */
#define TOK_SLOWDOWN_SECS	5	/* RFC 8628 3.5: slow_down adds 5 s for good */

const char *
o365_tokstore_grant_name(enum o365_tokstore_grant g)
{
	switch (g) {
	case O365_TOKSTORE_CLIENT_CREDENTIALS:	return "client_credentials";
	case O365_TOKSTORE_REFRESH_TOKEN:	return "refresh_token";
	default:				return "?";
	}
}

static const char *
tok_scope(const struct o365_tokstore_cfg *cfg)
{
	if (cfg->scope != NULL)
		return cfg->scope;
	return cfg->grant == O365_TOKSTORE_CLIENT_CREDENTIALS ?
	    O365_TOKSTORE_SCOPE_APP : O365_TOKSTORE_SCOPE_DELEGATED;
}

static const char *
tok_authority(const struct o365_tokstore_cfg *cfg)
{
	return cfg->oauth.authority != NULL ? cfg->oauth.authority : O365_OAUTH_AUTHORITY;
}

/* A config value that goes into the cache header: one line, not empty. */
static int
tok_check_value(const char *v, const char *what, struct o365_error *err)
{
	if (v == NULL || *v == '\0')
		return o365_error_set(err, O365_E_CONFIG, "tokstore: no %s configured", what);
	if (strpbrk(v, "\r\n") != NULL || strlen(v) > 512)
		return o365_error_set(err, O365_E_CONFIG,
		    "tokstore: %s has a line break or is too long", what);
	return O365_OK;
}

static int
tok_check_cfg(const struct o365_tokstore_cfg *cfg, struct o365_error *err)
{
	int r;

	if (cfg == NULL)
		return o365_error_set(err, O365_E_CONFIG, "tokstore: no configuration");
	if ((r = tok_check_value(cfg->identity, "identity (auth.user)", err)) != O365_OK ||
	    (r = tok_check_value(cfg->oauth.tenant, "oauth.tenant", err)) != O365_OK ||
	    (r = tok_check_value(cfg->oauth.client_id, "oauth.client_id", err)) != O365_OK ||
	    (r = tok_check_value(tok_authority(cfg), "oauth.authority", err)) != O365_OK ||
	    (r = tok_check_value(tok_scope(cfg), "oauth scope", err)) != O365_OK ||
	    (r = tok_check_value(cfg->cache_dir, "token cache directory", err)) != O365_OK)
		return r;
	switch (cfg->grant) {
	case O365_TOKSTORE_CLIENT_CREDENTIALS:
		if (cfg->client_secret == NULL && cfg->client_key == NULL &&
		    (cfg->client_secret_file == NULL || *cfg->client_secret_file == '\0'))
			return o365_error_set(err, O365_E_CONFIG, "tokstore: the client credentials "
			    "grant needs oauth.client_secret_file or a certificate");
		break;
	case O365_TOKSTORE_REFRESH_TOKEN:
		if (cfg->refresh_token_file == NULL || *cfg->refresh_token_file == '\0')
			return o365_error_set(err, O365_E_CONFIG,
			    "tokstore: the refresh token grant needs oauth.refresh_token_file");
		break;
	default:
		return o365_error_set(err, O365_E_CONFIG, "tokstore: unknown grant %d",
		    (int)cfg->grant);
	}
	return O365_OK;
}

static int
tok_path(char *dst, size_t sz, const char *dir, const char *name, struct o365_error *err)
{
	int n = snprintf(dst, sz, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= sz)
		return o365_error_set(err, O365_E_CONFIG, "tokstore: path %s/%s too long", dir,
		    name);
	return O365_OK;
}

/* The directory part of path ("." when there is none). */
static int
tok_dirname(const char *path, char *dst, size_t sz, struct o365_error *err)
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (slash == NULL) {
		snprintf(dst, sz, ".");
		return O365_OK;
	}
	n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= sz)
		return o365_error_set(err, O365_E_CONFIG, "tokstore: path %s too long", path);
	memcpy(dst, path, n);
	dst[n] = '\0';
	return O365_OK;
}

/* cache_dir: a real directory the runner owns and nobody else may write. */
static int
tok_check_dir(const char *dir, uid_t owner, struct o365_error *err)
{
	struct stat st;

	if (lstat(dir, &st) == -1)
		return o365_error_set(err, O365_E_CONFIG, "tokstore: cache directory %s: %s", dir,
		    strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return o365_error_set(err, O365_E_CONFIG,
		    "tokstore: cache directory %s is not a directory", dir);
	if (st.st_uid != owner)
		return o365_error_set(err, O365_E_CONFIG,
		    "tokstore: cache directory %s is owned by uid %u, not %u", dir,
		    (unsigned)st.st_uid, (unsigned)owner);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return o365_error_set(err, O365_E_CONFIG,
		    "tokstore: cache directory %s is writable by group or others (mode %04o)",
		    dir, (unsigned)(st.st_mode & 07777));
	return O365_OK;
}

static void
tok_sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Take <cache_dir>/token.lock exclusively, giving up when dl passes. */
static int
tok_lock(const struct o365_tokstore_cfg *cfg, const struct o365_deadline *dl, int *fd_out,
    struct o365_error *err)
{
	uid_t owner = cfg->owner_uid;
	char path[PATH_MAX];
	struct stat st;
	int fd, r, left;

	*fd_out = -1;
	if ((r = tok_path(path, sizeof(path), cfg->cache_dir, TOK_LOCK_NAME, err)) != O365_OK)
		return r;
	if ((fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600)) == -1)
		return o365_error_set(err, errno == ELOOP ? O365_E_CONFIG : O365_E_IO,
		    "tokstore: lock file %s: %s", path, strerror(errno));
	/* root setting up for the runner (--oauth-login): the runner must open it later */
	if (fstat(fd, &st) == -1 || (st.st_uid != owner && fchown(fd, owner, (gid_t)-1) == -1)) {
		r = o365_error_set(err, O365_E_IO, "tokstore: lock file %s: %s", path,
		    strerror(errno));
		close(fd);
		return r;
	}
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			break;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			r = o365_error_set(err, O365_E_IO, "tokstore: lock %s: %s", path,
			    strerror(errno));
			close(fd);
			return r;
		}
		if ((left = o365_deadline_left_ms(dl)) <= 0) {
			close(fd);
			return o365_error_set(err, O365_E_TIMEOUT,
			    "tokstore: another runner holds %s", path);
		}
		tok_sleep_ms(left < TOK_LOCK_POLL_MS ? (unsigned)left : TOK_LOCK_POLL_MS);
	}
	*fd_out = fd;
	return O365_OK;
}

static void
tok_unlock(int *fd)
{
	if (*fd >= 0) {
		(void)flock(*fd, LOCK_UN);
		close(*fd);
		*fd = -1;
	}
}

/* The cache header: every setting the token depends on. */
static int
tok_header(const struct o365_tokstore_cfg *cfg, char *dst, size_t sz, struct o365_error *err)
{
	int n = snprintf(dst, sz, TOK_CACHE_MAGIC "authority: %s\ntenant: %s\nclient_id: %s\n"
	    "grant: %s\nidentity: %s\nscope: %s\n", tok_authority(cfg), cfg->oauth.tenant,
	    cfg->oauth.client_id, o365_tokstore_grant_name(cfg->grant), cfg->identity,
	    tok_scope(cfg));

	if (n < 0 || (size_t)n >= sz)
		return o365_error_set(err, O365_E_CONFIG, "tokstore: settings too long");
	return O365_OK;
}

/* A token we would put on the wire: printable, no space, bounded. */
static int
tok_token_ok(const char *p, size_t len)
{
	size_t i;

	if (len == 0 || len > O365_MAX_TOKEN)
		return 0;
	for (i = 0; i < len; i++)
		if (p[i] <= 0x20 || p[i] >= 0x7f)
			return 0;
	return 1;
}

/*
 * Read <cache_dir>/access-token.  1: it belongs to cfg's settings and is
 * well-formed (*tok_out, *exp_out set); 0: absent, foreign or unusable
 * (*why says which, for status and debug logs).  Never an error: a bad cache
 * is replaced by the next successful request.
 */
static int
tok_cache_read(const struct o365_tokstore_cfg *cfg, struct o365_secret **tok_out,
    time_t *exp_out, const char **why)
{
	char path[PATH_MAX], header[TOK_MAX_HEADER], *buf = NULL, *p, *end, *nl;
	size_t hlen, got = 0;
	struct stat st;
	long long exp;
	ssize_t n;
	int fd = -1, ok = 0;

	*tok_out = NULL;
	*exp_out = 0;
	*why = "no cached token";
	if (tok_path(path, sizeof(path), cfg->cache_dir, TOK_CACHE_NAME, NULL) != O365_OK ||
	    tok_header(cfg, header, sizeof(header), NULL) != O365_OK)
		return 0;
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY)) == -1) {
		if (errno != ENOENT)
			*why = "cache file unreadable";
		return 0;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_uid != cfg->owner_uid ||
	    (st.st_mode & 077) != 0 || st.st_size > TOK_MAX_CACHE) {
		*why = "cache file has a wrong type, owner, mode or size";
		goto out;
	}
	if ((buf = malloc(TOK_MAX_CACHE + 1)) == NULL) {
		*why = "out of memory";
		goto out;
	}
	for (;;) {
		n = read(fd, buf + got, TOK_MAX_CACHE - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == TOK_MAX_CACHE)
			break;
	}
	buf[got] = '\0';
	*why = "cached token is for other settings";
	hlen = strlen(header);
	if (got < hlen || memcmp(buf, header, hlen) != 0)
		goto out;
	*why = "cache file malformed";
	p = buf + hlen;
	if (strncmp(p, "expires_at: ", 12) != 0)
		goto out;
	errno = 0;
	exp = strtoll(p + 12, &end, 10);
	if (errno != 0 || end == p + 12 || *end != '\n' || exp <= 0)
		goto out;
	p = end + 1;
	if (strncmp(p, "token: ", 7) != 0)
		goto out;
	p += 7;
	if ((nl = memchr(p, '\n', got - (size_t)(p - buf))) == NULL || nl[1] != '\0' ||
	    !tok_token_ok(p, (size_t)(nl - p)))
		goto out;
	if (o365_secret_dup(p, (size_t)(nl - p), tok_out) != O365_OK) {
		*why = "out of memory";
		goto out;
	}
	*exp_out = (time_t)exp;
	*why = "cached";
	ok = 1;
out:
	if (buf != NULL) {
		o365_cleanse(buf, TOK_MAX_CACHE + 1);
		free(buf);
	}
	if (fd >= 0)
		close(fd);
	return ok;
}

static int
tok_fsync_dir(const char *dir, struct o365_error *err)
{
	int fd, r = O365_OK;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return o365_error_set(err, O365_E_IO, "tokstore: open directory %s: %s", dir,
		    strerror(errno));
	if (fsync(fd) == -1 && errno != EINVAL)
		r = o365_error_set(err, O365_E_IO, "tokstore: fsync directory %s: %s", dir,
		    strerror(errno));
	close(fd);
	return r;
}

/*
 * Replace path durably: a temp file in the same directory (O_EXCL, 0600),
 * given uid/gid/mode, written, fsync'd, renamed over path, directory fsync'd.
 * Every failure removes the temp file; path is then unchanged.
 */
static int
tok_write_atomic(const char *path, const char *data, size_t len, uid_t uid, gid_t gid,
    mode_t mode, struct o365_error *err)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	size_t off = 0;
	ssize_t n;
	int fd = -1, r;

	if ((r = tok_dirname(path, dir, sizeof(dir), err)) != O365_OK)
		return r;
	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp))
		return o365_error_set(err, O365_E_CONFIG, "tokstore: path %s too long", path);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1)	/* O_EXCL, mode 0600 */
		return o365_error_set(err, O365_E_IO, "tokstore: create a file beside %s: %s",
		    path, strerror(errno));
	if ((uid != geteuid() || gid != getegid()) && fchown(fd, uid, gid) == -1) {
		r = o365_error_set(err, O365_E_IO, "tokstore: chown %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (fchmod(fd, mode) == -1) {
		r = o365_error_set(err, O365_E_IO, "tokstore: chmod %s: %s", tmp, strerror(errno));
		goto fail;
	}
	while (off < len) {
		n = write(fd, data + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			r = o365_error_set(err, O365_E_IO, "tokstore: write %s: %s", tmp,
			    strerror(errno));
			goto fail;
		}
		off += (size_t)n;
	}
	if (fsync(fd) == -1) {
		r = o365_error_set(err, O365_E_IO, "tokstore: fsync %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd) == -1) {
		fd = -1;
		r = o365_error_set(err, O365_E_IO, "tokstore: close %s: %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		r = o365_error_set(err, O365_E_IO, "tokstore: rename %s to %s: %s", tmp, path,
		    strerror(errno));
		goto fail;
	}
	return tok_fsync_dir(dir, err);
fail:
	if (fd >= 0)
		close(fd);
	(void)unlink(tmp);
	return r;
}

/* Write "<header>expires_at: N\ntoken: T\n" as the cache (0600, the runner's). */
static int
tok_cache_write(const struct o365_tokstore_cfg *cfg, const struct o365_secret *tok,
    time_t exp, struct o365_error *err)
{
	char path[PATH_MAX], header[TOK_MAX_HEADER], *body;
	size_t cap;
	int n, r;

	if ((r = tok_path(path, sizeof(path), cfg->cache_dir, TOK_CACHE_NAME, err)) != O365_OK ||
	    (r = tok_header(cfg, header, sizeof(header), err)) != O365_OK)
		return r;
	cap = strlen(header) + tok->len + 64;
	if ((body = malloc(cap)) == NULL)
		return o365_error_set(err, O365_E_NOMEM, "tokstore: out of memory");
	n = snprintf(body, cap, "%sexpires_at: %lld\ntoken: %s\n", header, (long long)exp,
	    tok->data);
	if (n < 0 || (size_t)n >= cap)
		r = o365_error_set(err, O365_E_INVAL, "tokstore: cache entry too long");
	else
		r = tok_write_atomic(path, body, (size_t)n, cfg->owner_uid, getegid(), 0600, err);
	o365_cleanse(body, cap);	/* it held the token */
	free(body);
	return r;
}

static void
tok_cache_drop(const struct o365_tokstore_cfg *cfg)
{
	char path[PATH_MAX];

	if (tok_path(path, sizeof(path), cfg->cache_dir, TOK_CACHE_NAME, NULL) == O365_OK)
		(void)unlink(path);
}

/*
 * Store a new refresh token in cfg->refresh_token_file: the old file's owner
 * and mode (less any bits for others), or owner_uid and 0600 when there is
 * none yet.
 */
static int
tok_store_refresh(const struct o365_tokstore_cfg *cfg, const struct o365_secret *rt,
    struct o365_error *err)
{
	struct o365_secret *line = NULL;
	uid_t uid = cfg->owner_uid;
	gid_t gid = getegid();
	mode_t mode = 0600;
	struct stat st;
	int r;

	if (lstat(cfg->refresh_token_file, &st) == 0) {
		if (!S_ISREG(st.st_mode))
			return o365_error_set(err, O365_E_CONFIG,
			    "tokstore: %s is not a regular file", cfg->refresh_token_file);
		uid = st.st_uid;
		gid = st.st_gid;
		mode = st.st_mode & 0770;
	} else if (errno != ENOENT) {
		return o365_error_set(err, O365_E_IO, "tokstore: %s: %s", cfg->refresh_token_file,
		    strerror(errno));
	}
	if ((r = o365_secret_dup(rt->data, rt->len + 1, &line)) != O365_OK)
		return o365_error_set(err, r, "tokstore: out of memory");
	line->data[rt->len] = '\n';
	r = tok_write_atomic(cfg->refresh_token_file, line->data, line->len, uid, gid, mode, err);
	o365_secret_free(&line);
	return r;
}

static void
tok_log_fail(const struct o365_tokstore_cfg *cfg, const struct o365_log *lg, int r,
    const struct o365_oauth_error *oerr, const struct o365_error *err)
{
	o365_log(lg, LOG_ERR, "tokstore: identity=%s tenant=%s grant=%s result=%s error=%s "
	    "aadsts=%ld http=%ld reason=\"%s\"", cfg->identity, cfg->oauth.tenant,
	    o365_tokstore_grant_name(cfg->grant), o365_err_name(r),
	    oerr->error[0] != '\0' ? oerr->error : "-", oerr->aadsts, oerr->http_status,
	    err != NULL ? err->why : "");
}

/* Run the grant; a rotated refresh token is stored before we return. */
static int
tok_obtain(const struct o365_tokstore_cfg *cfg, const struct o365_deadline *dl,
    const struct o365_log *lg, struct o365_token **tok_out, int *rotated,
    struct o365_oauth_error *oerr, struct o365_error *err)
{
	struct o365_secret *csecret = NULL, *rt = NULL, *assertion = NULL;
	struct o365_oauth_request rq = { 0 };
	struct o365_token *tok = NULL;
	char aud[1024];
	int r;

	*tok_out = NULL;
	*rotated = 0;
	if (cfg->grant == O365_TOKSTORE_CLIENT_CREDENTIALS && cfg->client_key != NULL) {
		/* a new assertion per request: it lives 10 minutes */
		if ((r = o365_oauth_endpoint_url(&cfg->oauth, "token", aud, sizeof(aud),
		    err)) != O365_OK ||
		    (r = o365_jwt_assertion(cfg->client_key, cfg->oauth.client_id, aud, time(NULL),
		    &assertion, err)) != O365_OK)
			goto out;
		rq.client_assertion = assertion;
	} else if (cfg->client_secret == NULL && cfg->client_secret_file != NULL &&
	    *cfg->client_secret_file != '\0' &&
	    (r = o365_secret_read_file(cfg->client_secret_file, cfg->owner_uid, &csecret,
	    err)) != O365_OK)
		goto out;
	rq.scope = tok_scope(cfg);
	if (assertion == NULL)
		rq.client_secret = cfg->client_secret != NULL ? cfg->client_secret : csecret;
	if (cfg->grant == O365_TOKSTORE_CLIENT_CREDENTIALS) {
		rq.grant = O365_GRANT_CLIENT_CREDENTIALS;
	} else {
		if ((r = o365_secret_read_file(cfg->refresh_token_file, cfg->owner_uid, &rt,
		    err)) != O365_OK)
			goto out;
		rq.grant = O365_GRANT_REFRESH_TOKEN;
		rq.refresh_token = rt;
	}
	if ((r = o365_oauth_token(&cfg->oauth, &rq, dl, lg, &tok, oerr, err)) != O365_OK)
		goto out;
	if (cfg->grant == O365_TOKSTORE_REFRESH_TOKEN && tok->refresh_token != NULL &&
	    (tok->refresh_token->len != rt->len ||
	    memcmp(tok->refresh_token->data, rt->data, rt->len) != 0)) {
		if ((r = tok_store_refresh(cfg, tok->refresh_token, err)) != O365_OK) {
			/* the old token may already be spent: say what to do */
			o365_log(lg, LOG_ERR, "tokstore: identity=%s the server rotated the "
			    "refresh token but it could not be stored: %s; run --oauth-login "
			    "again if the next refresh fails", cfg->identity, err->why);
			goto out;
		}
		*rotated = 1;
	}
	*tok_out = tok;
	tok = NULL;
	r = O365_OK;
out:
	o365_token_free(&tok);
	o365_secret_free(&csecret);
	o365_secret_free(&assertion);
	o365_secret_free(&rt);
	return r;
}

/*
 * The start of the calls that may talk to Entra ID: oerr and err (the
 * caller's or its locals) reset, a deadline and a valid cfg required.
 */
static int
tok_begin(const struct o365_tokstore_cfg *cfg, const struct o365_deadline *dl,
    struct o365_oauth_error *oerr, struct o365_error *err)
{
	memset(oerr, 0, sizeof(*oerr));
	o365_error_clear(err);
	if (dl == NULL)
		return o365_error_set(err, O365_E_INVAL, "tokstore: no deadline");
	return tok_check_cfg(cfg, err);
}

int
o365_tokstore_get(const struct o365_tokstore_cfg *cfg, int force_refresh,
    const struct o365_deadline *dl, const struct o365_log *lg,
    struct o365_secret **token_out, time_t *expires_at_out,
    struct o365_oauth_error *oerr, struct o365_error *err)
{
	struct o365_error err_local;
	struct o365_oauth_error oerr_local;
	struct o365_secret *cached = NULL;
	struct o365_token *tok = NULL;
	const char *why;
	time_t exp, now;
	int lockfd = -1, rotated = 0, r;
	struct o365_error cerr;

	*token_out = NULL;
	if (expires_at_out != NULL)
		*expires_at_out = 0;
	if (oerr == NULL)
		oerr = &oerr_local;
	if (err == NULL)
		err = &err_local;
	if ((r = tok_begin(cfg, dl, oerr, err)) != O365_OK)
		return r;
	if ((r = tok_check_dir(cfg->cache_dir, cfg->owner_uid, err)) != O365_OK ||
	    (r = tok_lock(cfg, dl, &lockfd, err)) != O365_OK)
		goto out;

	/* re-read under the lock: another runner may have just refreshed */
	if (!force_refresh && tok_cache_read(cfg, &cached, &exp, &why)) {
		now = time(NULL);
		if (exp - now >= O365_TOKSTORE_MARGIN) {
			o365_log(lg, LOG_DEBUG, "tokstore: identity=%s grant=%s source=cache "
			    "expires_in=%lld", cfg->identity, o365_tokstore_grant_name(cfg->grant),
			    (long long)(exp - now));
			*token_out = cached;
			cached = NULL;
			if (expires_at_out != NULL)
				*expires_at_out = exp;
			r = O365_OK;
			goto out;
		}
		why = "cached token expires within the margin";
	} else if (force_refresh) {
		why = "refresh forced";
	}
	o365_log(lg, LOG_DEBUG, "tokstore: identity=%s asking the token endpoint: %s",
	    cfg->identity, why);

	if ((r = tok_obtain(cfg, dl, lg, &tok, &rotated, oerr, err)) != O365_OK) {
		tok_log_fail(cfg, lg, r, oerr, err);
		goto out;
	}
	/* a cache we cannot write costs a request next time, not this mail */
	if (tok_cache_write(cfg, tok->access_token, tok->expires_at, &cerr) != O365_OK)
		o365_log(lg, LOG_ERR, "tokstore: identity=%s cannot cache the access token: %s",
		    cfg->identity, cerr.why);
	o365_log(lg, LOG_INFO, "tokstore: identity=%s tenant=%s grant=%s source=endpoint "
	    "result=ok expires_in=%ld rotated=%s", cfg->identity, cfg->oauth.tenant,
	    o365_tokstore_grant_name(cfg->grant), tok->expires_in, rotated ? "yes" : "no");
	*token_out = tok->access_token;
	tok->access_token = NULL;
	if (expires_at_out != NULL)
		*expires_at_out = tok->expires_at;
	r = O365_OK;
out:
	tok_unlock(&lockfd);
	o365_secret_free(&cached);
	o365_token_free(&tok);
	return r;
}

static void
tok_copy(char *dst, size_t sz, const char *src)
{
	if (src == NULL)
		src = "";
	o365_sanitize(dst, sz, src, strlen(src));
}

int
o365_tokstore_status(const struct o365_tokstore_cfg *cfg, struct o365_tokstore_status *out,
    struct o365_error *err)
{
	struct o365_error err_local;
	struct o365_secret *s = NULL;
	struct o365_error serr;
	const char *why, *file;
	time_t exp;
	int r;

	memset(out, 0, sizeof(*out));
	if (err == NULL)
		err = &err_local;
	o365_error_clear(err);
	if ((r = tok_check_cfg(cfg, err)) != O365_OK)
		return r;
	tok_copy(out->identity, sizeof(out->identity), cfg->identity);
	tok_copy(out->tenant, sizeof(out->tenant), cfg->oauth.tenant);
	tok_copy(out->client_id, sizeof(out->client_id), cfg->oauth.client_id);
	tok_copy(out->scope, sizeof(out->scope), tok_scope(cfg));
	out->grant = o365_tokstore_grant_name(cfg->grant);
	if (tok_cache_read(cfg, &s, &exp, &why)) {
		out->cached = 1;
		out->expires_at = exp;
	}
	o365_secret_free(&s);
	file = cfg->grant == O365_TOKSTORE_CLIENT_CREDENTIALS ? cfg->client_secret_file :
	    cfg->refresh_token_file;
	if (cfg->grant == O365_TOKSTORE_CLIENT_CREDENTIALS &&
	    (cfg->client_secret != NULL || cfg->client_key != NULL)) {
		out->secret_ok = 1;	/* read by the caller already */
	} else if (o365_secret_read_file(file, cfg->owner_uid, &s, &serr) == O365_OK) {
		out->secret_ok = 1;
	} else {
		tok_copy(out->secret_why, sizeof(out->secret_why), serr.why);
	}
	o365_secret_free(&s);
	return O365_OK;
}

/* Wait secs between polls: the test hook, or a real sleep bounded by dl. */
static int
tok_poll_wait(const struct o365_tokstore_cfg *cfg, unsigned int secs,
    const struct o365_deadline *dl, struct o365_error *err)
{
	if (cfg->sleep_fn != NULL) {
		cfg->sleep_fn(cfg->sleep_ctx, secs);
		return O365_OK;
	}
	if ((long long)o365_deadline_left_ms(dl) <= (long long)secs * 1000)
		return o365_error_set(err, O365_E_TIMEOUT,
		    "tokstore: device login: out of time while waiting for the sign-in");
	tok_sleep_ms(secs * 1000U);
	return O365_OK;
}

/* Tell the front end (if it asked) that the poll goes on waiting. */
static void
tok_poll_said(const struct o365_tokstore_cfg *cfg, const char *state, long interval, long left)
{
	if (cfg->poll_fn != NULL)
		cfg->poll_fn(cfg->poll_ctx, state, interval, left > 0 ? left : 0);
}

int
o365_tokstore_device_login(const struct o365_tokstore_cfg *cfg,
    void (*show)(void *ctx, const struct o365_devicecode *dc), void *ctx,
    const struct o365_deadline *dl, const struct o365_log *lg,
    struct o365_oauth_error *oerr, struct o365_error *err)
{
	struct o365_error err_local;
	struct o365_oauth_error oerr_local;
	struct o365_oauth_request rq = { 0 };
	struct o365_secret *csecret = NULL;
	struct o365_devicecode *dc = NULL;
	struct o365_token *tok = NULL;
	char dir[PATH_MAX];
	long interval, waited = 0;
	int lockfd = -1, r;

	if (oerr == NULL)
		oerr = &oerr_local;
	if (err == NULL)
		err = &err_local;
	if ((r = tok_begin(cfg, dl, oerr, err)) != O365_OK)
		return r;
	if (cfg->grant != O365_TOKSTORE_REFRESH_TOKEN)
		return o365_error_set(err, O365_E_CONFIG,
		    "tokstore: device login needs oauth.refresh_token_file");
	/* fail before the user signs in, not after */
	if ((r = tok_check_dir(cfg->cache_dir, cfg->owner_uid, err)) != O365_OK ||
	    (r = tok_dirname(cfg->refresh_token_file, dir, sizeof(dir), err)) != O365_OK)
		return r;
	if (access(dir, W_OK) == -1)
		return o365_error_set(err, O365_E_CONFIG,
		    "tokstore: cannot write the refresh token into %s: %s", dir, strerror(errno));
	if (cfg->client_secret == NULL && cfg->client_secret_file != NULL &&
	    *cfg->client_secret_file != '\0' &&
	    (r = o365_secret_read_file(cfg->client_secret_file, cfg->owner_uid, &csecret,
	    err)) != O365_OK)
		return r;
	if ((dc = calloc(1, sizeof(*dc))) == NULL) {
		r = o365_error_set(err, O365_E_NOMEM, "tokstore: out of memory");
		goto out;
	}
	if ((r = o365_oauth_devicecode(&cfg->oauth, tok_scope(cfg), dl, lg, dc, oerr,
	    err)) != O365_OK) {
		tok_log_fail(cfg, lg, r, oerr, err);
		goto out;
	}
	if (show != NULL)
		show(ctx, dc);
	rq.grant = O365_GRANT_DEVICE_CODE;
	rq.scope = tok_scope(cfg);
	rq.device_code = dc->device_code;
	rq.client_secret = cfg->client_secret != NULL ? cfg->client_secret : csecret;
	interval = dc->interval > 0 ? dc->interval : 5;
	for (;;) {
		/* RFC 8628 3.5: wait interval before each poll; stop at expires_in */
		if (waited + interval > dc->expires_in) {
			r = o365_error_set(err, O365_E_TIMEOUT,
			    "tokstore: device login: the code expired after %ld s without a "
			    "sign-in", dc->expires_in);
			break;
		}
		if ((r = tok_poll_wait(cfg, (unsigned int)interval, dl, err)) != O365_OK)
			break;
		waited += interval;
		r = o365_oauth_token(&cfg->oauth, &rq, dl, lg, &tok, oerr, err);
		if (r == O365_OK)
			break;
		if (r == O365_E_AUTH && strcmp(oerr->error, "authorization_pending") == 0) {
			tok_poll_said(cfg, "authorization_pending", interval, dc->expires_in - waited);
			continue;
		}
		if ((r == O365_E_AUTH && strcmp(oerr->error, "slow_down") == 0) ||
		    r == O365_E_TEMP) {
			interval += TOK_SLOWDOWN_SECS;
			tok_poll_said(cfg, r == O365_E_TEMP ? "busy" : "slow_down", interval,
			    dc->expires_in - waited);
			continue;
		}
		break;		/* authorization_declined, expired_token, bad client, ... */
	}
	if (r != O365_OK) {
		tok_log_fail(cfg, lg, r, oerr, err);
		goto out;
	}
	if (tok->refresh_token == NULL) {
		r = o365_error_set(err, O365_E_PROTO, "tokstore: device login: the answer has no "
		    "refresh token (does the scope include offline_access?)");
		goto out;
	}
	if ((r = tok_lock(cfg, dl, &lockfd, err)) != O365_OK ||
	    (r = tok_store_refresh(cfg, tok->refresh_token, err)) != O365_OK)
		goto out;
	tok_cache_drop(cfg);	/* it may hold another account's token */
	o365_log(lg, LOG_INFO, "tokstore: identity=%s tenant=%s device login ok: refresh token "
	    "stored in %s", cfg->identity, cfg->oauth.tenant, cfg->refresh_token_file);
	r = O365_OK;
out:
	tok_unlock(&lockfd);
	if (dc != NULL) {
		o365_cleanse(dc, sizeof(*dc));
		free(dc);
	}
	o365_token_free(&tok);
	o365_secret_free(&csecret);
	return r;
}
