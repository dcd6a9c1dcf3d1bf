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

#define LOGIN_DEADLINE_MS	(20 * 60 * 1000)	/* a device code lives 15 minutes */

static int
set(const char *s)
{
	return s != NULL && s[0] != '\0';
}

int
sm_xoauth_init(struct sm_xoauth *x, const struct sm_conf *c, const struct o365_tls_opts *tls,
    uid_t quid, int read_secret, struct o365_error *err)
{
	struct o365_jwt_cert_info ci;
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
		if ((r = o365_jwt_key_load(c->oauth_certificate_file, c->oauth_private_key_file, 0,
		    &x->client_key, err)) != O365_OK)
			return r;
		o365_jwt_key_info(x->client_key, &ci);
		snprintf(x->thumbprint, sizeof(x->thumbprint), "%s", ci.thumbprint);
		x->cfg.client_key = x->client_key;
		return O365_OK;
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
	o365_jwt_key_free(&x->client_key);
	x->cfg.client_key = NULL;
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
	if ((r = o365_tokstore_get(&x->cfg, force, dl, lg, &tok, &exp, oerr, err)) != O365_OK)
		return r;
	o365_log(lg, LOG_DEBUG, "xoauth2: identity=%s grant=%s token expires in %llds%s",
	    x->cfg.identity, o365_tokstore_grant_name(x->cfg.grant),
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

/* The certificate credential: file, thumbprint, subject, expiry; never the key. */
static void
print_certificate(const struct sm_xoauth *x, FILE *fp)
{
	struct o365_jwt_cert_info ci;
	char when[64];
	struct tm tm;
	time_t now = time(NULL);

	o365_jwt_key_info(x->client_key, &ci);
	if (gmtime_r(&ci.not_after, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(when, sizeof(when), "?");
	fprintf(fp, "oauth2: certificate %s, thumbprint %s, subject %s, expires %s (%s)\n",
	    x->certificate_file, ci.thumbprint, ci.subject, when,
	    ci.not_after <= now ? "EXPIRED: upload a new one" :
	    ci.not_after - now < 30 * 86400 ? "in less than 30 days: renew it" : "ok");
}

int
sm_xoauth_print_status(const struct sm_xoauth *x, FILE *fp, struct o365_error *err)
{
	struct o365_tokstore_status st;
	char when[64];
	struct tm tm;
	int r;

	if ((r = o365_tokstore_status(&x->cfg, &st, err)) != O365_OK)
		return r;
	fprintf(fp, "oauth2: identity %s, tenant %s, client_id %s, grant %s, scope %s\n",
	    st.identity, st.tenant, st.client_id, st.grant, st.scope);
	if (x->client_key != NULL)
		print_certificate(x, fp);
	if (st.cached && localtime_r(&st.expires_at, &tm) != NULL &&
	    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %z", &tm) > 0)
		fprintf(fp, "oauth2: cached access token expires %s (in %llds)\n", when,
		    (long long)(st.expires_at - time(NULL)));
	else
		fprintf(fp, "oauth2: no cached access token (one is requested on the next run)\n");
	if (!st.secret_ok)
		return o365_error_set(err, O365_E_CONFIG, "%s", st.secret_why);
	return O365_OK;
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

/* What --oauth-login has told the user while waiting. */
struct login_ui {
	FILE	*fp;
	long	 said_left;	/* "left" when "still waiting" was last printed, -1: never */
};

#define LOGIN_SAY_EVERY	60	/* seconds between two "still waiting" lines */

static void
show_code(void *ctx, const struct o365_devicecode *dc)
{
	struct login_ui *ui = ctx;

	if (dc->message[0] != '\0')
		fprintf(ui->fp, "%s\n", dc->message);
	else
		fprintf(ui->fp, "To sign in, open %s and enter the code %s\n", dc->verification_uri,
		    dc->user_code);
	fprintf(ui->fp, "waiting for the sign-in (polling every %lds, the code expires in %lds)...\n",
	    dc->interval, dc->expires_in);
	fflush(ui->fp);
}

/* Each poll that goes on waiting: say so, without a line every few seconds. */
static void
show_poll(void *ctx, const char *state, long interval, long left)
{
	struct login_ui *ui = ctx;

	if (strcmp(state, "slow_down") == 0)
		fprintf(ui->fp, "the sign-in service asked to poll more slowly: now every %lds\n",
		    interval);
	else if (strcmp(state, "busy") == 0)
		fprintf(ui->fp, "the sign-in service is busy: trying again in %lds\n", interval);
	else if (ui->said_left < 0 || ui->said_left - left >= LOGIN_SAY_EVERY)
		fprintf(ui->fp, "still waiting for the sign-in (the code expires in %lds)...\n", left);
	else
		return;
	if (strcmp(state, "authorization_pending") == 0)
		ui->said_left = left;
	fflush(ui->fp);
}

int
sm_xoauth_login(struct sm_xoauth *x, gid_t qgid, FILE *fp, const struct o365_log *lg,
    struct o365_oauth_error *oerr, struct o365_error *err)
{
	struct login_ui ui = { .fp = fp, .said_left = -1 };
	struct o365_deadline dl;
	int r;

	memset(oerr, 0, sizeof(*oerr));
	o365_deadline_in(&dl, LOGIN_DEADLINE_MS);
	x->cfg.poll_fn = show_poll;
	x->cfg.poll_ctx = &ui;
	r = o365_tokstore_device_login(&x->cfg, show_code, &ui, &dl, lg, oerr, err);
	x->cfg.poll_fn = NULL;
	x->cfg.poll_ctx = NULL;
	/* the runner rewrites it on rotation: its group must be the runner's too */
	if (r == O365_OK && (chown(x->cfg.refresh_token_file, x->cfg.owner_uid, qgid) == -1 ||
	    chmod(x->cfg.refresh_token_file, 0600) == -1))
		r = o365_error_set(err, O365_E_IO, "cannot give %s to the queue user: %s",
		    x->cfg.refresh_token_file, strerror(errno));
	if (r == O365_OK) {
		fprintf(fp, "signed in: the refresh token for %s is stored in %s\n", x->cfg.identity,
		    x->cfg.refresh_token_file);
		return O365_OK;
	}
	if (r == O365_E_AUTH && strcmp(oerr->error, "authorization_declined") == 0)
		fprintf(fp, "sign-in declined: nothing stored; run --oauth-login again to retry\n");
	else if (r == O365_E_AUTH && strcmp(oerr->error, "expired_token") == 0)
		fprintf(fp, "the code expired before the sign-in: nothing stored; run --oauth-login "
		    "again\n");
	else if (r == O365_E_TIMEOUT)
		fprintf(fp, "no sign-in before the code expired: nothing stored; run --oauth-login "
		    "again\n");
	else
		fprintf(fp, "sign-in failed: nothing stored\n");
	fflush(fp);
	return r;
}
