/*
 * check.c: one credential check, for pam_o365.so and o365-authtest.
 *
 * imap-login: IMAP LOGIN over implicit TLS.  entra-ropc: the password grant at
 * the Entra ID token endpoint, then (verify_imap) AUTHENTICATE XOAUTH2 with
 * the token.  One deadline covers every step, whatever the servers do.
 * The PAM code comes from policy.c's tables; only a positive answer from the
 * server maps to PAM_SUCCESS.
 */
#include <stdio.h>
#include <string.h>

#include <security/_pam_types.h>

#include "o365/deadline.h"
#include "o365/imap.h"
#include "o365/oauth.h"
#include "o365/secret.h"
#include "pam_o365_int.h"

static void
step(const struct pam_o365_observer *obs, const char *what, const char *detail)
{
	if (obs != NULL && obs->step != NULL)
		obs->step(obs->ctx, what, detail);
}

static void
set_reason(struct pam_o365_result *res, const struct pam_o365_outcome *oc,
    int rc, const struct o365_error *err)
{
	if (oc->reason != NULL)
		(void)snprintf(res->reason, sizeof(res->reason), "%s", oc->reason);
	else if (err->why[0] != '\0')
		(void)snprintf(res->reason, sizeof(res->reason), "%s: %s",
		    o365_err_name(rc), err->why);
	else
		(void)snprintf(res->reason, sizeof(res->reason), "%s", o365_err_name(rc));
	res->pam = oc->pam;
	res->prio = oc->prio;
	res->user_msg = oc->user_msg;
}

/* Connect to the IMAP server, then LOGIN or AUTHENTICATE XOAUTH2. */
static int
imap_step(const struct pam_o365_conf *conf, const char *login, const char *cred,
    size_t credlen, int xoauth2, const struct o365_deadline *dl,
    const struct o365_log *lg, const struct pam_o365_observer *obs,
    struct pam_o365_result *res, struct o365_error *err)
{
	struct o365_imap *im = NULL;
	struct o365_error lerr;
	int r;

	(void)snprintf(res->server, sizeof(res->server), "%s:%d", conf->imap.host,
	    conf->imap.port);
	step(obs, "connect", res->server);
	if ((r = o365_imap_connect(conf->imap.host, (unsigned int)conf->imap.port,
	    &conf->tls_opts, dl, lg, &im, err)) != O365_OK)
		goto out;
	if (obs != NULL && obs->imap != NULL)
		obs->imap(obs->ctx, im);
	if (xoauth2) {
		step(obs, "imap", "AUTHENTICATE XOAUTH2 <secret>");
		r = o365_imap_auth_xoauth2(im, login, cred, credlen, dl, err);
	} else {
		step(obs, "imap", "LOGIN <user> <secret>");
		r = o365_imap_login(im, login, cred, credlen, dl, err);
	}
	if (r == O365_OK) {
		o365_error_clear(&lerr);
		(void)o365_imap_logout(im, dl, &lerr);	/* only informative */
	}
out:
	o365_imap_free(&im);
	return r;
}

static void
check_imap_login(const struct pam_o365_conf *conf, const char *login, const char *pass,
    size_t passlen, const struct o365_deadline *dl, const struct o365_log *lg,
    const struct pam_o365_observer *obs, struct pam_o365_result *res)
{
	struct pam_o365_outcome oc;
	struct o365_error err;
	int r;

	o365_error_clear(&err);
	r = imap_step(conf, login, pass, passlen, 0, dl, lg, obs, res, &err);
	pam_o365_outcome_imap(r, &oc);
	set_reason(res, &oc, r, &err);
}

/* "https://login.microsoftonline.com/" -> "login.microsoftonline.com" for the log. */
static void
authority_host(const char *authority, char *out, size_t outsz)
{
	const char *h = authority, *e;

	if (strncmp(h, "https://", 8) == 0)
		h += 8;
	e = strchr(h, '/');
	(void)snprintf(out, outsz, "%.*s", (int)(e != NULL ? (size_t)(e - h) : strlen(h)), h);
}

static void
check_ropc(const struct pam_o365_conf *conf, const char *login, const char *pass,
    size_t passlen, const struct o365_deadline *dl, const struct o365_log *lg,
    const struct pam_o365_observer *obs, const struct pam_o365_oauth_api *api,
    struct pam_o365_result *res)
{
	struct o365_oauth_opts opts;
	struct o365_oauth_request rq;
	struct o365_oauth_error oerr;
	struct o365_secret *pw = NULL;
	struct o365_token *tok = NULL;
	struct pam_o365_outcome oc;
	struct o365_error err;
	int r;

	o365_error_clear(&err);
	memset(&oerr, 0, sizeof(oerr));
	memset(&opts, 0, sizeof(opts));
	memset(&rq, 0, sizeof(rq));
	opts.authority = conf->oauth.authority;
	opts.tenant = conf->oauth.tenant;
	opts.client_id = conf->oauth.client_id;
	opts.tls = &conf->tls_opts;
	authority_host(conf->oauth.authority, res->server, sizeof(res->server));
	if (api == NULL || api->token == NULL || api->token_free == NULL) {
		res->pam = PAM_AUTHINFO_UNAVAIL;
		res->prio = LOG_ERR;
		(void)snprintf(res->reason, sizeof(res->reason),
		    "the token client (%s) is not available", PAM_O365_OAUTH_HELPER);
		return;
	}
	step(obs, "token endpoint", res->server);

	if ((r = o365_secret_dup(pass, passlen, &pw)) != O365_OK) {
		o365_error_set(&err, r, "out of memory");
		pam_o365_outcome_imap(r, &oc);
		set_reason(res, &oc, r, &err);
		goto out;
	}
	rq.grant = O365_GRANT_PASSWORD;
	rq.scope = O365_SCOPE_IMAP;
	rq.username = login;
	rq.password = pw;
	r = api->token(&opts, &rq, dl, lg, &tok, &oerr, &err);
	if (obs != NULL && obs->token != NULL)
		obs->token(obs->ctx, r, tok, &oerr, &err);
	o365_secret_free(&pw);
	pam_o365_outcome_ropc(r, &oerr, &oc);
	set_reason(res, &oc, r, &err);
	if (r == O365_E_AUTH && strstr(res->reason, "AADSTS") == NULL) {
		/* the rule's words, then what Entra ID said: error and hint */
		size_t n = strlen(res->reason);
		char code[32] = "";

		if (oerr.aadsts != 0)
			(void)snprintf(code, sizeof(code), " AADSTS%ld", oerr.aadsts);
		(void)snprintf(res->reason + n, sizeof(res->reason) - n, " (%s%s)",
		    oerr.error[0] != '\0' ? oerr.error : "no error code", code);
	} else if (r == O365_E_TEMP && oerr.http_status != 0 &&
	    strstr(res->reason, "HTTP") == NULL) {
		size_t n = strlen(res->reason);

		(void)snprintf(res->reason + n, sizeof(res->reason) - n, " (HTTP %ld)",
		    oerr.http_status);
	}
	if (r != O365_OK)
		goto out;
	if (tok == NULL || tok->access_token == NULL || tok->access_token->len == 0) {
		/* cannot happen by oauth.h's contract; never success without a token */
		res->pam = PAM_AUTHINFO_UNAVAIL;
		res->prio = LOG_ERR;
		(void)snprintf(res->reason, sizeof(res->reason), "no access token in the answer");
		goto out;
	}
	if (!conf->auth.verify_imap) {
		(void)snprintf(res->reason, sizeof(res->reason), "token issued (verify_imap off)");
		goto out;
	}
	o365_error_clear(&err);
	r = imap_step(conf, login, tok->access_token->data, tok->access_token->len, 1,
	    dl, lg, obs, res, &err);
	pam_o365_outcome_xoauth2(r, &oc);
	set_reason(res, &oc, r, &err);
	if (r == O365_OK)
		(void)snprintf(res->reason, sizeof(res->reason), "token issued, IMAP XOAUTH2 OK");
out:
	if (tok != NULL)
		api->token_free(&tok);
	o365_secret_free(&pw);
}

void
pam_o365_check(const struct pam_o365_conf *conf, const char *login, const char *pass,
    size_t passlen, const struct o365_log *lg, const struct pam_o365_observer *obs,
    const struct pam_o365_oauth_api *oauth, struct pam_o365_result *res)
{
	struct o365_deadline dl;
	struct o365_error err;
	int r;

	memset(res, 0, sizeof(*res));
	res->pam = PAM_AUTHINFO_UNAVAIL;	/* until a step says otherwise */
	res->prio = LOG_ERR;
	o365_error_clear(&err);
	/* refused before anything is sent */
	if ((r = o365_credential_check(login, login != NULL ? strlen(login) : 0,
	    "login name", &err)) != O365_OK ||
	    (r = o365_credential_check(pass, passlen, "password", &err)) != O365_OK) {
		res->pam = PAM_AUTH_ERR;
		res->prio = LOG_NOTICE;
		(void)snprintf(res->reason, sizeof(res->reason), "%s", err.why);
		return;
	}
	o365_deadline_in(&dl, (unsigned int)conf->imap.timeout * 1000u);
	if (conf->method == PAM_O365_ENTRA_ROPC)
		check_ropc(conf, login, pass, passlen, &dl, lg, obs, oauth, res);
	else
		check_imap_login(conf, login, pass, passlen, &dl, lg, obs, res);
}
