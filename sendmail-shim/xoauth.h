/*
 * xoauth.h: o365-sendmail's OAuth2 relay identity (auth.mechanism "xoauth2"):
 * the tokstore config from sendmail.conf, AUTH XOAUTH2 with a cached token,
 * what a refused token means, --oauth-login and the --check / -v lines.
 *
 * Files and owners:
 *   oauth.client_secret_file  root-owned, not readable by others; read as
 *                             root before the runner drops privileges and
 *                             handed to the token store in memory.
 *   oauth.private_key_file    (with oauth.certificate_file, instead of a
 *                             client secret) the same rules and handling;
 *                             the certificate itself is public.
 *   oauth.refresh_token_file  owned by the queue user, 0600, in a directory
 *                             the queue user may write (the rotated token is
 *                             renamed into place), e.g. <queue.dir>/state.
 *   <queue.dir>/state/        the access token cache and its lock (0700,
 *                             queue user; --init creates it).
 */
#ifndef O365_SM_XOAUTH_H
#define O365_SM_XOAUTH_H

#include <limits.h>
#include <stdio.h>

#include "o365/jwt.h"
#include "o365/oauth.h"
#include "o365/smtp.h"
#include "o365/tokstore.h"
#include "config.h"

#define SM_STATE_DIR	"state"		/* under queue.dir */

struct sm_xoauth {
	struct o365_tokstore_cfg	 cfg;
	struct o365_secret		*client_secret;	/* client credentials: read as root */
	struct o365_jwt_key		*client_key;	/* or a certificate: read as root */
	const char			*certificate_file;	/* set for a certificate */
	const char			*private_key_file;
	char				 thumbprint[41];	/* of the loaded certificate */
	char				 cache_dir[PATH_MAX];
	time_t				 sess_expires;	/* the token of the open session */
	long				 sess_left;	/* its seconds left at AUTH */
};

/* Non-zero when c asks for XOAUTH2. */
int	sm_xoauth_enabled(const struct sm_conf *c);

/* What relaying with xoauth2 needs in the config (keys, exactly one of a
 * client secret, a certificate and key, a refresh token). */
int	sm_xoauth_check_conf(const struct sm_conf *c, struct o365_error *err) O365_MUST_CHECK;

/*
 * Fill x from c; tls must outlive x.  quid owns the cache and the refresh
 * token file.  read_secret: read client_secret_file now (as root, owner 0).
 */
int	sm_xoauth_init(struct sm_xoauth *x, const struct sm_conf *c,
	    const struct o365_tls_opts *tls, uid_t quid, int read_secret,
	    struct o365_error *err) O365_MUST_CHECK;
void	sm_xoauth_free(struct sm_xoauth *x);

/*
 * AUTH XOAUTH2 on s with a token from the store (force: skip the cache).
 * *from_endpoint set when the failure came from the token endpoint (then
 * oerr says why), clear when the SMTP server answered.
 */
int	sm_xoauth_auth(struct sm_xoauth *x, struct o365_smtp *s, int force,
	    const struct o365_deadline *dl, const struct o365_log *lg, int *from_endpoint,
	    struct o365_oauth_error *oerr, struct o365_error *err) O365_MUST_CHECK;

/*
 * The three parts of the above that differ between the programs:
 * xoauth_store.c (o365-sendmail-runner-oauth: the token store in the
 * process) and xoauth_child.c (o365-sendmail-runner: a child per token that
 * loads the token module, which exports sm_tokmod_get and sm_tokmod_status).  load_key: the
 * certificate credential, as root; token: like o365_tokstore_get().
 */
int	sm_xoauth_load_key(struct sm_xoauth *x, struct o365_error *err) O365_MUST_CHECK;
void	sm_xoauth_free_key(struct sm_xoauth *x);
int	sm_xoauth_token(struct sm_xoauth *x, int force, const struct o365_deadline *dl,
	    const struct o365_log *lg, struct o365_secret **tok, time_t *exp,
	    struct o365_oauth_error *oerr, struct o365_error *err) O365_MUST_CHECK;
int	sm_tokmod_get(const struct o365_tokstore_cfg *cfg, int force, const struct o365_deadline *dl,
	    const struct o365_log *lg, struct o365_secret **tok, time_t *exp,
	    struct o365_oauth_error *oerr, struct o365_error *err);
int	sm_tokmod_status(const struct sm_xoauth *x, FILE *fp, struct o365_error *err);

/*
 * Non-zero when the token the open session authenticated with is about to
 * expire at now, so the runner should start a new session (and so get a new
 * token) before the next message: when it has less than
 * O365_TOKSTORE_MARGIN seconds left (the cache's rule), or, for a token that
 * had no more than that at AUTH, less than half of what it had.  Exchange
 * Online may end a session whose token has expired.
 */
int	sm_xoauth_session_stale(const struct sm_xoauth *x, time_t now);

/* Non-zero for the SMTP answers that refuse the token itself: 535 5.7.3,
 * 535 5.7.139, 501 5.5.124 (and any other 535/530 to AUTH). */
int	sm_xoauth_refused(const struct o365_error *err);

/*
 * Non-zero when a token endpoint failure needs the admin (an OAuth error
 * answer, a missing or unsafe file, a rotated token that could not be
 * stored), zero for what passes by itself (429/5xx, network, TLS, timeout).
 */
int	sm_xoauth_needs_admin(int r);

/* The one alert line: what the admin must fix. */
void	sm_xoauth_alert_text(const struct sm_xoauth *x, int from_endpoint, int r,
	    const struct o365_oauth_error *oerr, const struct o365_error *err, char *dst,
	    size_t size);

/* The tls settings of sendmail.conf (the SMTP connection and the token
 * endpoint share them). */
int	sm_xoauth_tls(const struct sm_conf *c, struct o365_tls_opts *out, struct o365_error *err)
	    O365_MUST_CHECK;

/* --init: <queue_dir>/state, 0700, owned by the queue user (idempotent). */
int	sm_xoauth_init_state(const char *queue_dir, uid_t quid, gid_t qgid, struct o365_error *err)
	    O365_MUST_CHECK;

/* --check / -v: identity, tenant, grant, cached token expiry; never a token.
 * O365_E_CONFIG when the secret or refresh token file is not usable. */
int	sm_xoauth_print_status(const struct sm_xoauth *x, FILE *fp, struct o365_error *err)
	    O365_MUST_CHECK;

/* --oauth-login (root): the device code flow; prints to fp.  The stored
 * refresh token file ends owned by the queue user (quid, qgid), 0600. */
int	sm_xoauth_login(struct sm_xoauth *x, gid_t qgid, FILE *fp, const struct o365_log *lg,
	    struct o365_oauth_error *oerr, struct o365_error *err) O365_MUST_CHECK;

#endif
