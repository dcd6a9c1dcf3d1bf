/*
 * xoauth.c: the OAuth2 side of the relay (see xoauth.h).  Policy about the
 * queue (hold, never bounce) stays in relay.c; this file knows what a token
 * failure means for the admin.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "o365/sasl.h"
#include "o365/secret.h"
#include "xoauth.h"

static int
set(const char *s)
{
	return s != NULL && s[0] != '\0';
}

/* o365_tokstore_grant_name() without the token store */
static const char *
grant_name(enum o365_tokstore_grant g)
{
	switch (g) {
	case O365_TOKSTORE_CLIENT_CREDENTIALS:
		return "client_credentials";
	case O365_TOKSTORE_REFRESH_TOKEN:
		return "refresh_token";
	}
	return "?";
}

int
sm_xoauth_init(struct sm_xoauth *x, const struct sm_conf *c, const struct o365_tls_opts *tls,
    uid_t quid, int read_secret, struct o365_error *err)
{
	int n, r;

	memset(x, 0, sizeof(*x));
	if ((r = sm_xoauth_check_conf(c, err)) != O365_OK)
		return r;
	n = snprintf(x->cache_dir, sizeof(x->cache_dir), "%s/%s", c->queue_dir, SM_STATE_DIR);
	if (n < 0 || (size_t)n >= sizeof(x->cache_dir))
		return o365_error_set(err, O365_E_CONFIG, "queue.dir %s is too long", c->queue_dir);
	x->cfg.oauth.authority = c->oauth_authority;
	x->cfg.oauth.tenant = c->oauth_tenant;
	x->cfg.oauth.client_id = c->oauth_client_id;
	x->cfg.oauth.tls = tls;
	x->cfg.identity = c->auth_user;
	x->cfg.cache_dir = x->cache_dir;
	x->cfg.owner_uid = quid;
	if (set(c->oauth_refresh_token_file)) {
		x->cfg.grant = O365_TOKSTORE_REFRESH_TOKEN;
		x->cfg.refresh_token_file = c->oauth_refresh_token_file;
		return O365_OK;
	}
	x->cfg.grant = O365_TOKSTORE_CLIENT_CREDENTIALS;
	if (set(c->oauth_certificate_file)) {
		x->certificate_file = c->oauth_certificate_file;
		x->private_key_file = c->oauth_private_key_file;
		if (!read_secret)
			return O365_OK;
		/* the key like a secret file: root-owned, read as root */
		return sm_xoauth_load_key(x, err);
	}
	x->cfg.client_secret_file = c->oauth_client_secret_file;
	if (!read_secret)
		return O365_OK;
	/* root-owned, read as root: the runner never needs to open it */
	if ((r = o365_secret_read_file(c->oauth_client_secret_file, 0, &x->client_secret,
	    err)) != O365_OK)
		return r;
	x->cfg.client_secret = x->client_secret;
	return O365_OK;
}

void
sm_xoauth_free(struct sm_xoauth *x)
{
	o365_secret_free(&x->client_secret);
	x->cfg.client_secret = NULL;
	sm_xoauth_free_key(x);
}

int
sm_xoauth_auth(struct sm_xoauth *x, struct o365_smtp *s, int force,
    const struct o365_deadline *dl, const struct o365_log *lg, int *from_endpoint,
    struct o365_oauth_error *oerr, struct o365_error *err)
{
	struct o365_secret *tok = NULL;
	time_t exp = 0;
	int r;

	*from_endpoint = 1;
	memset(oerr, 0, sizeof(*oerr));
	if ((r = sm_xoauth_token(x, force, dl, lg, &tok, &exp, oerr, err)) != O365_OK)
		return r;
	o365_log(lg, LOG_DEBUG, "xoauth2: identity=%s grant=%s token expires in %llds%s",
	    x->cfg.identity, grant_name(x->cfg.grant),
	    (long long)(exp - time(NULL)), force ? " (refreshed)" : "");
	*from_endpoint = 0;
	r = o365_smtp_auth(s, O365_SASL_XOAUTH2, x->cfg.identity, tok->data, tok->len, dl, err);
	o365_secret_free(&tok);
	if (r == O365_OK) {
		x->sess_expires = exp;
		x->sess_left = (long)(exp - time(NULL));
	}
	return r;
}

int
sm_xoauth_session_stale(const struct sm_xoauth *x, time_t now)
{
	long left, limit;

	if (x->sess_expires == 0)
		return 0;
	left = (long)(x->sess_expires - now);
	limit = x->sess_left > O365_TOKSTORE_MARGIN ? O365_TOKSTORE_MARGIN : x->sess_left / 2;
	return left < limit || left <= 0;
}

int
sm_xoauth_refused(const struct o365_error *err)
{
	if (err->reply == 535 || err->reply == 530)
		return 1;
	return err->reply == 501 && strcmp(err->enhanced, "5.5.124") == 0;
}

int
sm_xoauth_needs_admin(int r)
{
	return r == O365_E_AUTH || r == O365_E_CONFIG || r == O365_E_IO || r == O365_E_INVAL;
}

void
sm_xoauth_alert_text(const struct sm_xoauth *x, int from_endpoint, int r,
    const struct o365_oauth_error *oerr, const struct o365_error *err, char *dst, size_t size)
{
	const char *id = x->cfg.identity, *cid = x->cfg.oauth.client_id;
	int rt = x->cfg.grant == O365_TOKSTORE_REFRESH_TOKEN;

	if (!from_endpoint) {
		if (strcmp(err->enhanced, "5.7.139") == 0)
			snprintf(dst, size, "queue held: Exchange Online refused AUTH XOAUTH2 for %s "
			    "(%d %s): SMTP AUTH is disabled for the mailbox or the tenant; run "
			    "Set-CASMailbox %s -SmtpClientAuthenticationDisabled $false, then "
			    "o365-sendmail -q", id, err->reply, err->enhanced, id);
		else if (rt)
			snprintf(dst, size, "queue held: Exchange Online refused the delegated token of "
			    "%s even after a refresh (%d %s): the app %s needs the delegated permission "
			    "SMTP.Send (and offline_access) and the mailbox SMTP AUTH; fix it, run "
			    "o365-sendmail --oauth-login as %s, then o365-sendmail -q", id, err->reply,
			    err->enhanced, cid, id);
		else
			snprintf(dst, size, "queue held: Exchange Online refused the app token for %s "
			    "even after a refresh (%d %s): the app %s needs the SMTP.SendAsApp "
			    "application permission with admin consent and an Exchange service "
			    "principal with rights on %s (New-ServicePrincipal, Add-MailboxPermission "
			    "-AccessRights FullAccess); then o365-sendmail -q", id, err->reply,
			    err->enhanced, cid, id);
		return;
	}
	if (r == O365_E_AUTH && rt && (strcmp(oerr->error, "invalid_grant") == 0 ||
	    strcmp(oerr->error, "interaction_required") == 0))
		snprintf(dst, size, "queue held: Entra ID refused the refresh token of %s (%s "
		    "AADSTS%ld): run o365-sendmail --oauth-login as root and sign in as %s, then "
		    "o365-sendmail -q", id, oerr->error, oerr->aadsts, id);
	else if (r == O365_E_AUTH && strcmp(oerr->error, "invalid_client") == 0 &&
	    x->certificate_file != NULL)
		snprintf(dst, size, "queue held: Entra ID refused the certificate credential of "
		    "app %s (invalid_client AADSTS%ld): upload %s (thumbprint %s) to the app's "
		    "Certificates & secrets in Entra ID, or put the key that belongs to the "
		    "uploaded certificate into %s; then o365-sendmail -q", cid, oerr->aadsts,
		    x->certificate_file, x->thumbprint[0] != '\0' ? x->thumbprint : "?",
		    x->private_key_file);
	else if (r == O365_E_AUTH && strcmp(oerr->error, "invalid_client") == 0)
		snprintf(dst, size, "queue held: Entra ID refused the client credentials of app %s "
		    "(invalid_client AADSTS%ld): put a valid client secret into %s (or, for a "
		    "public client, allow public client flows), then o365-sendmail -q", cid,
		    oerr->aadsts, set(x->cfg.client_secret_file) ? x->cfg.client_secret_file :
		    "oauth.client_secret_file");
	else if (r == O365_E_AUTH)
		snprintf(dst, size, "queue held: Entra ID refused the token request of app %s in "
		    "tenant %s for %s (%s AADSTS%ld): check oauth.tenant, oauth.client_id and the app "
		    "registration, then o365-sendmail -q", cid, x->cfg.oauth.tenant, id,
		    oerr->error[0] != '\0' ? oerr->error : "error", oerr->aadsts);
	else
		snprintf(dst, size, "queue held: no token for %s: %s; fix it, then o365-sendmail -q",
		    id, err->why);
}

int
sm_xoauth_tls(const struct sm_conf *c, struct o365_tls_opts *out, struct o365_error *err)
{
	memset(out, 0, sizeof(*out));
	out->ca_file = c->tls_ca_file;
	out->ca_dir = c->tls_ca_dir;
	if (o365_tls_version_parse(c->tls_min_version, &out->min_version) != O365_OK)
		return o365_error_set(err, O365_E_CONFIG, "tls.min_version: %s", c->tls_min_version);
	return O365_OK;
}

int
sm_xoauth_init_state(const char *queue_dir, uid_t quid, gid_t qgid, struct o365_error *err)
{
	char path[PATH_MAX];
	struct stat st;
	int n;

	n = snprintf(path, sizeof(path), "%s/%s", queue_dir, SM_STATE_DIR);
	if (n < 0 || (size_t)n >= sizeof(path))
		return o365_error_set(err, O365_E_CONFIG, "queue.dir %s is too long", queue_dir);
	if (mkdir(path, 0700) == -1 && errno != EEXIST)
		return o365_error_set(err, O365_E_IO, "cannot create %s: %s", path, strerror(errno));
	if (lstat(path, &st) == -1 || !S_ISDIR(st.st_mode))
		return o365_error_set(err, O365_E_IO, "%s is not a directory", path);
	if (chown(path, quid, qgid) == -1 || chmod(path, 0700) == -1)
		return o365_error_set(err, O365_E_IO, "cannot set the owner or mode of %s: %s", path,
		    strerror(errno));
	return O365_OK;
}
