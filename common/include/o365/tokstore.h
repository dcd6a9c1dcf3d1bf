/*
 * tokstore.h: access tokens for one relay identity (a mailbox sending with
 * XOAUTH2), obtained through the client credentials or the refresh token
 * grant, cached on disk and shared safely between concurrent queue runners.
 *
 * Files, all in directories only the runner (owner_uid) may write:
 *   <cache_dir>/access-token   the cached access token, 0600, written
 *                              atomically; it records authority, tenant,
 *                              client_id, grant, identity and scope, so a
 *                              config change makes it unusable.
 *   <cache_dir>/token.lock     flock()ed exclusively around read cache /
 *                              ask the endpoint / write back, so two runners
 *                              never both spend one refresh token (Entra
 *                              rotates them: the second use of a rotated one
 *                              fails with AADSTS700082-like errors).
 *   refresh_token_file         read with o365_secret_read_file(owner_uid);
 *                              rewritten atomically (same owner and mode)
 *                              when the server rotates the token.
 * No policy here: the front end decides what a failure means for its queue.
 */
#ifndef O365_TOKSTORE_H
#define O365_TOKSTORE_H

#include <sys/types.h>
#include <time.h>
#include "err.h"
#include "deadline.h"
#include "limits.h"
#include "log.h"
#include "jwt.h"
#include "oauth.h"
#include "secret.h"

/* A cached token is used only while it is valid for at least this long. */
#define O365_TOKSTORE_MARGIN	600	/* seconds: issue 5, "at least 10 minutes early" */

/* Default scopes per grant. */
#define O365_TOKSTORE_SCOPE_APP		O365_SCOPE_APP
#define O365_TOKSTORE_SCOPE_DELEGATED	O365_SCOPE_SMTP " offline_access"

enum o365_tokstore_grant {
	O365_TOKSTORE_CLIENT_CREDENTIALS = 1,	/* client_secret_file or client_key */
	O365_TOKSTORE_REFRESH_TOKEN = 2,	/* refresh_token_file */
};

struct o365_tokstore_cfg {
	struct o365_oauth_opts		 oauth;		/* authority, tenant, client_id, tls */
	enum o365_tokstore_grant	 grant;
	const char			*identity;	/* the mailbox (auth.user): logs, cache key */
	const char			*client_secret_file;	/* CLIENT_CREDENTIALS: required;
								 * REFRESH_TOKEN: optional, for a
								 * confidential client */
	const char			*refresh_token_file;	/* REFRESH_TOKEN: required */
	const struct o365_secret	*client_secret;	/* optional: the client secret
							 * already in memory (read by root
							 * before a privilege drop); when set,
							 * client_secret_file is not read */
	const struct o365_jwt_key	*client_key;	/* CLIENT_CREDENTIALS with a
							 * certificate: the app's key, loaded
							 * by the caller (as root before a
							 * privilege drop); when set, each
							 * request carries a new client
							 * assertion and no client secret */
	const char			*scope;		/* NULL: O365_TOKSTORE_SCOPE_APP or _DELEGATED */
	const char			*cache_dir;	/* required; owned by owner_uid, not group/other
							 * writable */
	uid_t				 owner_uid;	/* the runner: owns cache_dir and the secret files */

	/*
	 * Tests only (NULL in production): called instead of sleeping between
	 * device code polls; the poll loop counts the seconds asked for as time
	 * spent, so a test can drive every state without waiting.
	 */
	void				(*sleep_fn)(void *ctx, unsigned int seconds);
	void				*sleep_ctx;

	/*
	 * Optional (o365_tokstore_device_login): called after each poll that
	 * goes on waiting, so a front end can tell the user.  state is
	 * "authorization_pending", "slow_down" or "busy" (429/5xx); interval
	 * the seconds until the next poll; left the seconds until the code
	 * expires.  Never given a secret.
	 */
	void				(*poll_fn)(void *ctx, const char *state, long interval,
					    long left);
	void				*poll_ctx;
};

/* "client_credentials" / "refresh_token" / "?" */
const char	*o365_tokstore_grant_name(enum o365_tokstore_grant g);

/*
 * An access token for cfg.  Under the lock: a cached token for this exact
 * config valid for O365_TOKSTORE_MARGIN more seconds is returned without a
 * request (unless force_refresh: after the server refused a token, skip the
 * cache once); else the grant runs, a rotated refresh token is stored
 * atomically, and the new access token is cached.
 * O365_OK: *token_out (free with o365_secret_free) and *expires_at_out (may
 * be NULL).  Errors: those of o365_oauth_token (O365_E_AUTH with oerr filled
 * for an OAuth error such as invalid_grant/AADSTS700082 or invalid_client,
 * O365_E_TEMP for 429/5xx, NET, TLS, TIMEOUT, PROTO); O365_E_CONFIG (missing
 * or unsafe files or directories, bad cfg); O365_E_IO (cannot write the
 * cache or the rotated refresh token: the new refresh token is then lost,
 * err says so); O365_E_TIMEOUT also when the lock is not had within dl.
 * The refresh token file is never touched unless a new token was issued.
 * oerr may be NULL.  Logs one line per request (never a secret).
 */
int	o365_tokstore_get(const struct o365_tokstore_cfg *cfg, int force_refresh,
	    const struct o365_deadline *dl, const struct o365_log *lg,
	    struct o365_secret **token_out, time_t *expires_at_out,
	    struct o365_oauth_error *oerr, struct o365_error *err) O365_MUST_CHECK;

/* What --check / -v show: never a token. */
struct o365_tokstore_status {
	char		 identity[O365_MAX_ADDRESS + 1];
	char		 tenant[129];
	char		 client_id[129];
	const char	*grant;			/* o365_tokstore_grant_name */
	char		 scope[1025];		/* the effective scope */
	int		 cached;		/* 1: a cached token for this config */
	time_t		 expires_at;		/* of the cached token; 0 if none */
	int		 secret_ok;		/* the secret file (secret or refresh token) is
						 * readable and safe */
	char		 secret_why[256];	/* why not, when !secret_ok */
};

/*
 * Fill *out for cfg without any network request and without the lock (the
 * cache is only ever replaced by rename).  O365_E_CONFIG for a bad cfg;
 * an unreadable cache or secret file is reported in *out, not as an error.
 */
int	o365_tokstore_status(const struct o365_tokstore_cfg *cfg,
	    struct o365_tokstore_status *out, struct o365_error *err) O365_MUST_CHECK;

/*
 * One-time setup for a REFRESH_TOKEN cfg (o365-sendmail --oauth-login): the
 * device code flow of RFC 8628.  POSTs the devicecode request, calls
 * show(ctx, dc) once (the front end prints dc->message or the URL and code),
 * then polls every dc->interval seconds (5 more after each slow_down) until
 * success, authorization_declined, expired_token or dc->expires_in seconds.
 * On success the refresh token is stored atomically in refresh_token_file
 * (created 0600 owned by owner_uid, or replacing the old one with its owner
 * and mode) and the access token cache is dropped.
 * O365_E_AUTH: declined, expired_token or another OAuth error (oerr says
 * which); O365_E_TIMEOUT: dc->expires_in passed while pending, or dl passed;
 * O365_E_PROTO: the answer held no refresh token (no offline_access);
 * other errors as o365_tokstore_get.  dl bounds the whole flow.
 */
int	o365_tokstore_device_login(const struct o365_tokstore_cfg *cfg,
	    void (*show)(void *ctx, const struct o365_devicecode *dc), void *ctx,
	    const struct o365_deadline *dl, const struct o365_log *lg,
	    struct o365_oauth_error *oerr, struct o365_error *err) O365_MUST_CHECK;

#endif
