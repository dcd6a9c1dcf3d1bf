/*
 * policy.c: the module's decisions, kept pure so each can be unit-tested:
 * module arguments, the mapping of the PAM user to a login name, the mapping
 * of core and token endpoint results to PAM codes, and the one log line per
 * attempt.  Nothing here talks to a server or to libpam.
 */
#include <stdio.h>
#include <string.h>

#include <security/_pam_types.h>

#include "o365/limits.h"
#include "o365/secret.h"
#include "pam_o365_int.h"

/* ---- module arguments ---- */

void
pam_o365_parse_args(int argc, const char **argv, const struct o365_log *lg,
    struct pam_o365_args *out)
{
	int i;

	memset(out, 0, sizeof(*out));
	out->config = PAM_O365_DEFAULT_CONFIG;
	out->pass = PAM_O365_PASS_TRY;
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (a == NULL)
			continue;
		if (strncmp(a, "config=", 7) == 0 && a[7] != '\0')
			out->config = a + 7;
		else if (strcmp(a, "debug") == 0)
			out->debug = 1;
		else if (strcmp(a, "use_first_pass") == 0 || strcmp(a, "use_authtok") == 0)
			out->pass = PAM_O365_PASS_USE;
		else if (strcmp(a, "try_first_pass") == 0)
			out->pass = PAM_O365_PASS_TRY;
		else {
			char clean[128];

			o365_sanitize(clean, sizeof(clean), a, strlen(a));
			o365_log(lg, LOG_ERR, "unknown option: %s", clean);
			out->nunknown++;
		}
	}
}

/* ---- user mapping ---- */

int
pam_o365_map_check(const char *map, struct o365_error *err)
{
	const char *p;

	if (map == NULL || *map == '\0')
		return o365_error_set(err, O365_E_CONFIG, "user.map is empty");
	if (strstr(map, "%u") == NULL)
		return o365_error_set(err, O365_E_CONFIG,
		    "user.map must contain %%u (every user would be the same login)");
	for (p = map; *p != '\0'; p++) {
		if (*p != '%')
			continue;
		if (p[1] != 'u' && p[1] != '%')
			return o365_error_set(err, O365_E_CONFIG,
			    "user.map: only %%u and %%%% may follow a percent sign");
		p++;
	}
	return O365_OK;
}

int
pam_o365_map_user(const char *map, int lowercase, const char *user, char *out,
    size_t outsz, struct o365_error *err)
{
	size_t o = 0, ulen, i;
	const char *p;
	int r;

	if (outsz == 0)
		return o365_error_set(err, O365_E_TOOLONG, "no room for the login name");
	out[0] = '\0';
	ulen = user != NULL ? strlen(user) : 0;
	/* strlen stops at a NUL, so a NUL cannot be inside; CR/LF can */
	if ((r = o365_credential_check(user, ulen, "user name", err)) != O365_OK)
		return r;
	if ((r = pam_o365_map_check(map, err)) != O365_OK)
		return r;
	for (p = map; *p != '\0'; p++) {
		const char *add = p;
		size_t n = 1;

		if (*p == '%') {
			p++;
			if (*p == 'u') {
				add = user;
				n = ulen;
			}	/* else "%%": add the '%' at add */
		}
		if (n >= outsz - o)
			return o365_error_set(err, O365_E_TOOLONG,
			    "login name longer than %zu bytes", outsz - 1);
		memcpy(out + o, add, n);
		o += n;
	}
	out[o] = '\0';
	if (lowercase)
		for (i = 0; i < o; i++)
			if (out[i] >= 'A' && out[i] <= 'Z')
				out[i] = (char)(out[i] - 'A' + 'a');
	if ((r = o365_credential_check(out, o, "login name", err)) != O365_OK) {
		out[0] = '\0';
		return r;
	}
	return O365_OK;
}

/* ---- outcomes ---- */

const char *
pam_o365_result_name(int pam)
{
	switch (pam) {
	case PAM_SUCCESS:		return "success";
	case PAM_AUTH_ERR:		return "auth_err";
	case PAM_PERM_DENIED:		return "perm_denied";
	case PAM_AUTHINFO_UNAVAIL:	return "authinfo_unavail";
	case PAM_IGNORE:		return "ignore";
	case PAM_USER_UNKNOWN:		return "user_unknown";
	case PAM_BUF_ERR:		return "buf_err";
	case PAM_SERVICE_ERR:		return "service_err";
	case PAM_CONV_ERR:		return "conv_err";
	case PAM_CRED_INSUFFICIENT:	return "cred_insufficient";
	default:			return "other";
	}
}

/*
 * Map at the edge; the default never means success.  O365_OK reaches here
 * only after a tagged OK with our tag (imap.c's contract).
 */
static int
pam_result(int rc)
{
	switch (rc) {
	case O365_OK:		return PAM_SUCCESS;
	case O365_E_AUTH:	return PAM_AUTH_ERR;
	case O365_E_INVAL:	return PAM_AUTH_ERR;	/* refused before sending */
	case O365_E_NOMEM:	return PAM_BUF_ERR;
	default:		return PAM_AUTHINFO_UNAVAIL;	/* could not check */
	}
}

static int
prio_of(int pam)
{
	switch (pam) {
	case PAM_SUCCESS:		return LOG_INFO;
	case PAM_AUTH_ERR:		return LOG_NOTICE;
	case PAM_PERM_DENIED:		return LOG_NOTICE;
	case PAM_BUF_ERR:		return LOG_CRIT;
	default:			return LOG_ERR;
	}
}

void
pam_o365_outcome_imap(int rc, struct pam_o365_outcome *out)
{
	memset(out, 0, sizeof(*out));
	out->pam = pam_result(rc);
	out->prio = prio_of(out->pam);
	switch (rc) {
	case O365_OK:		out->reason = "OK"; break;
	case O365_E_AUTH:	out->reason = NULL; break;	/* the server's NO text */
	default:		out->reason = NULL; break;	/* err->why */
	}
}

void
pam_o365_outcome_xoauth2(int rc, struct pam_o365_outcome *out)
{
	pam_o365_outcome_imap(rc, out);
	if (rc == O365_E_AUTH) {
		/*
		 * The token endpoint accepted the password, but the mailbox
		 * refused the token: no mailbox, IMAP turned off for it, or a
		 * token for the wrong resource.  Not a wrong password.
		 */
		out->pam = PAM_PERM_DENIED;
		out->prio = LOG_NOTICE;
		out->reason = "password accepted by Entra ID but IMAP refused the token "
		    "(no mailbox, or IMAP disabled for it)";
	}
}

/*
 * Entra ID answers.  Decide on error; the AADSTS number refines
 * invalid_grant only (the numbers change over time; an unknown one falls
 * back to the row with aadsts 0).  Keep in step with man/pam_o365.8.
 */
struct ropc_rule {
	const char	*error;		/* NULL: any */
	long		 aadsts;	/* 0: any */
	int		 pam;
	int		 prio;
	const char	*reason;
	const char	*user_msg;
};

static const struct ropc_rule ropc_rules[] = {
	{ "invalid_grant", 50126, PAM_AUTH_ERR, LOG_NOTICE,
	  "wrong user name or password (AADSTS50126)", NULL },
	/* unknown user: the same code, message and path as a wrong password */
	{ "invalid_grant", 50034, PAM_AUTH_ERR, LOG_NOTICE,
	  "wrong user name or password (AADSTS50034)", NULL },
	{ "invalid_grant", 50056, PAM_AUTH_ERR, LOG_NOTICE,
	  "no password stored for the user (AADSTS50056)", NULL },
	{ "invalid_grant", 50053, PAM_AUTH_ERR, LOG_NOTICE,
	  "account locked by Entra ID smart lockout (AADSTS50053)",
	  "Your Microsoft 365 account is locked for now; try again later." },
	{ "invalid_grant", 50055, PAM_PERM_DENIED, LOG_NOTICE,
	  "password expired (AADSTS50055)",
	  "Your Microsoft 365 password has expired; change it at https://aka.ms/sspr" },
	{ "invalid_grant", 50057, PAM_PERM_DENIED, LOG_NOTICE,
	  "account disabled (AADSTS50057)",
	  "Your Microsoft 365 account is disabled." },
	{ "invalid_grant", 53003, PAM_PERM_DENIED, LOG_NOTICE,
	  "blocked by Conditional Access (AADSTS53003)",
	  "Microsoft 365 Conditional Access does not allow this sign-in." },
	{ "invalid_grant", 65001, PAM_AUTHINFO_UNAVAIL, LOG_ALERT,
	  "no consent for the application: grant admin consent for "
	  "IMAP.AccessAsUser.All (AADSTS65001)", NULL },
	{ "invalid_grant", 0, PAM_AUTH_ERR, LOG_NOTICE,
	  "password grant refused", NULL },
	{ "interaction_required", 0, PAM_PERM_DENIED, LOG_NOTICE,
	  "MFA or another interaction required: the password grant cannot do it",
	  "Your Microsoft 365 account requires multi-factor authentication, "
	  "which this login cannot perform." },
	{ "unauthorized_client", 0, PAM_AUTHINFO_UNAVAIL, LOG_ALERT,
	  "application not usable: check oauth.client_id and oauth.tenant", NULL },
	{ "invalid_client", 0, PAM_AUTHINFO_UNAVAIL, LOG_ALERT,
	  "client refused: turn on 'Allow public client flows' for the app", NULL },
	{ "invalid_scope", 0, PAM_AUTHINFO_UNAVAIL, LOG_ALERT,
	  "scope refused: the app needs IMAP.AccessAsUser.All", NULL },
	{ "invalid_request", 0, PAM_AUTHINFO_UNAVAIL, LOG_ERR,
	  "request refused: check oauth.tenant and oauth.client_id", NULL },
	{ NULL, 0, PAM_AUTHINFO_UNAVAIL, LOG_ERR,
	  "unexpected error from the token endpoint", NULL },
};

void
pam_o365_outcome_ropc(int rc, const struct o365_oauth_error *oerr,
    struct pam_o365_outcome *out)
{
	const struct ropc_rule *r;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (rc != O365_E_AUTH || oerr == NULL) {
		/* OK (a token), INVAL, NOMEM; TEMP (429, 5xx), NET, TLS, ... */
		pam_o365_outcome_imap(rc == O365_E_AUTH ? O365_E_PROTO : rc, out);
		if (rc == O365_OK)
			out->reason = "token issued";
		return;
	}
	for (i = 0; i < sizeof(ropc_rules) / sizeof(ropc_rules[0]); i++) {
		r = &ropc_rules[i];
		if (r->error != NULL && strcmp(r->error, oerr->error) != 0)
			continue;
		if (r->aadsts != 0 && r->aadsts != oerr->aadsts)
			continue;
		out->pam = r->pam;
		out->prio = r->prio;
		out->reason = r->reason;
		out->user_msg = r->user_msg;
		return;
	}
	/* not reached: the last row matches everything */
	out->pam = PAM_AUTHINFO_UNAVAIL;
	out->prio = LOG_ERR;
}

/* ---- the log line ---- */

/*
 * Append s as a value.  Quoted: quote and backslash are escaped first, then
 * non-printables become \xNN (so a literal "\x1b" stays distinguishable).
 * Unquoted: spaces and quotes become '_' so key=value stays splittable.
 */
static void
put_value(char *out, size_t outsz, size_t *o, const char *s, int quoted)
{
	char raw[400], clean[400];
	size_t i, r = 0, n;

	if (s == NULL || *s == '\0')
		s = "-";
	for (i = 0; s[i] != '\0' && r + 2 < sizeof(raw); i++) {
		char ch = s[i];

		if (!quoted && (ch == ' ' || ch == '"'))
			ch = '_';
		else if (quoted && (ch == '"' || ch == '\\'))
			raw[r++] = '\\';
		raw[r++] = ch;
	}
	n = o365_sanitize(clean, sizeof(clean), raw, r);
	if (quoted && *o + 1 < outsz)
		out[(*o)++] = '"';
	for (i = 0; i < n && *o + 2 < outsz; i++)
		out[(*o)++] = clean[i];
	if (quoted && *o + 1 < outsz)
		out[(*o)++] = '"';
	out[*o] = '\0';
}

static void
put_text(char *out, size_t outsz, size_t *o, const char *s)
{
	size_t n = strlen(s);

	if (n >= outsz - *o)
		n = outsz - *o - 1;
	memcpy(out + *o, s, n);
	*o += n;
	out[*o] = '\0';
}

void
pam_o365_format_line(const struct pam_o365_attempt *a, char *out, size_t outsz)
{
	char ms[32];
	size_t o = 0;

	if (outsz == 0)
		return;
	out[0] = '\0';
	put_text(out, outsz, &o, "user=");
	put_value(out, outsz, &o, a->user, 0);
	put_text(out, outsz, &o, " login=");
	put_value(out, outsz, &o, a->login, 0);
	put_text(out, outsz, &o, " method=");
	put_value(out, outsz, &o, a->method, 0);
	put_text(out, outsz, &o, " server=");
	put_value(out, outsz, &o, a->server, 0);
	put_text(out, outsz, &o, " result=");
	put_text(out, outsz, &o, pam_o365_result_name(a->pam));
	put_text(out, outsz, &o, " reason=");
	put_value(out, outsz, &o, a->reason, 1);
	(void)snprintf(ms, sizeof(ms), " ms=%ld", a->ms);
	put_text(out, outsz, &o, ms);
}
