/*
 * xoauth_store.c: the parts of xoauth.h that need the token store (libcurl,
 * json-c) or the certificate parser (json-c): fetching a token, loading the
 * certificate key, --check / -v and --oauth-login.  Linked into
 * o365-sendmail-runner-oauth and, for the token fetch alone, into the token
 * module o365-sendmail-oauth.so (tokmod.c).  o365-sendmail-runner, which
 * delivers, links xoauth_child.c instead: it fetches each token in a child
 * that loads that module, so libcurl and json-c never map into it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "o365/secret.h"
#include "xoauth.h"

#define LOGIN_DEADLINE_MS	(20 * 60 * 1000)	/* a device code lives 15 minutes */

int
sm_xoauth_load_key(struct sm_xoauth *x, struct o365_error *err)
{
	struct o365_jwt_cert_info ci;
	int r;

	if ((r = o365_jwt_key_load(x->certificate_file, x->private_key_file, 0, &x->client_key,
	    err)) != O365_OK)
		return r;
	o365_jwt_key_info(x->client_key, &ci);
	snprintf(x->thumbprint, sizeof(x->thumbprint), "%s", ci.thumbprint);
	x->cfg.client_key = x->client_key;
	return O365_OK;
}

void
sm_xoauth_free_key(struct sm_xoauth *x)
{
	o365_jwt_key_free(&x->client_key);
	x->cfg.client_key = NULL;
}

int
sm_xoauth_token(struct sm_xoauth *x, int force, const struct o365_deadline *dl,
    const struct o365_log *lg, struct o365_secret **tok, time_t *exp,
    struct o365_oauth_error *oerr, struct o365_error *err)
{
	return o365_tokstore_get(&x->cfg, force, dl, lg, tok, exp, oerr, err);
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
