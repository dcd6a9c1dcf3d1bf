/*
 * xoauth_none.c: xoauth.h for o365-sendmail-runner, the runner without
 * libcurl and json-c (they cost 4.7 MB of RSS just to load).  That program
 * executes o365-sendmail-runner-oauth (xoauth.c, the token store) before it
 * does anything when auth.mechanism is "xoauth2", and for --init and
 * --oauth-login, so nothing here is reached; each call says so rather than
 * pretend.  Linked before the core library, these definitions keep
 * xoauth.o (and with it libcurl) out of the program.
 */
#include <string.h>

#include "xoauth.h"

static int
none(struct o365_error *err)
{
	return o365_error_set(err, O365_E_CONFIG,
	    "auth.mechanism \"xoauth2\" is handled by o365-sendmail-runner-oauth");
}

int
sm_xoauth_init(struct sm_xoauth *x, const struct sm_conf *c, const struct o365_tls_opts *tls,
    uid_t quid, int read_secret, struct o365_error *err)
{
	memset(x, 0, sizeof(*x));
	return none(err);
}

void
sm_xoauth_free(struct sm_xoauth *x)
{
}

int
sm_xoauth_auth(struct sm_xoauth *x, struct o365_smtp *s, int force, const struct o365_deadline *dl,
    const struct o365_log *lg, int *from_endpoint, struct o365_oauth_error *oerr,
    struct o365_error *err)
{
	*from_endpoint = 0;
	return none(err);
}

int
sm_xoauth_refused(const struct o365_error *err)
{
	return 0;
}

int
sm_xoauth_needs_admin(int r)
{
	return 0;
}

void
sm_xoauth_alert_text(const struct sm_xoauth *x, int from_endpoint, int r,
    const struct o365_oauth_error *oerr, const struct o365_error *err, char *dst, size_t size)
{
	if (size > 0)
		dst[0] = '\0';
}

int
sm_xoauth_tls(const struct sm_conf *c, struct o365_tls_opts *out, struct o365_error *err)
{
	return none(err);
}

int
sm_xoauth_init_state(const char *queue_dir, uid_t quid, gid_t qgid, struct o365_error *err)
{
	return none(err);
}

int
sm_xoauth_print_status(const struct sm_xoauth *x, FILE *fp, struct o365_error *err)
{
	return none(err);
}

int
sm_xoauth_login(struct sm_xoauth *x, gid_t qgid, FILE *fp, const struct o365_log *lg,
    struct o365_oauth_error *oerr, struct o365_error *err)
{
	return none(err);
}

int
sm_xoauth_session_stale(const struct sm_xoauth *x, time_t now)
{
	return 0;
}
