/*
 * oauth.h: a Microsoft identity platform token client (OAuth 2.0, RFC 6749,
 * device authorization RFC 8628) over libcurl, answers parsed with json-c.
 *
 * TLS is verified exactly as the core does (tls opts: CA file/dir, TLS 1.2
 * minimum, host name), https only, no redirects, no proxy from the
 * environment, no signals.  Never calls curl_global_cleanup() (we may run
 * inside sshd or sudo).
 */
#ifndef O365_OAUTH_H
#define O365_OAUTH_H

#include <stddef.h>
#include <time.h>
#include "err.h"
#include "deadline.h"
#include "log.h"
#include "tls.h"
#include "secret.h"

#define O365_OAUTH_AUTHORITY	"https://login.microsoftonline.com"
#define O365_SCOPE_IMAP		"https://outlook.office.com/IMAP.AccessAsUser.All"
#define O365_SCOPE_SMTP		"https://outlook.office.com/SMTP.Send"
#define O365_SCOPE_APP		"https://outlook.office365.com/.default"

struct o365_oauth_opts {
	const char			*authority;	/* NULL: O365_OAUTH_AUTHORITY; https only */
	const char			*tenant;	/* "contoso.onmicrosoft.com" or a GUID */
	const char			*client_id;
	const struct o365_tls_opts	*tls;
};

enum o365_oauth_grant {
	O365_GRANT_PASSWORD,		/* ROPC: username + password */
	O365_GRANT_CLIENT_CREDENTIALS,	/* client_secret or client_assertion */
	O365_GRANT_REFRESH_TOKEN,	/* refresh_token */
	O365_GRANT_DEVICE_CODE,		/* device_code */
};

struct o365_oauth_request {
	enum o365_oauth_grant		 grant;
	const char			*scope;
	const char			*username;	/* PASSWORD */
	const struct o365_secret	*password;	/* PASSWORD */
	const struct o365_secret	*client_secret;	/* CLIENT_CREDENTIALS (and confidential clients) */
	const struct o365_secret	*refresh_token;	/* REFRESH_TOKEN */
	const struct o365_secret	*client_assertion;	/* CLIENT_CREDENTIALS with a
								 * certificate (jwt.h), instead
								 * of client_secret: sent with
								 * client_assertion_type
								 * jwt-bearer (RFC 7523 2.2) */
	const char			*device_code;	/* DEVICE_CODE */
};

struct o365_token {
	struct o365_secret	*access_token;
	struct o365_secret	*refresh_token;	/* NULL unless the server sent one */
	char			 token_type[16];	/* "Bearer" */
	char			 scope[256];
	long			 expires_in;	/* seconds, as sent */
	time_t			 expires_at;	/* time(NULL) + expires_in at receipt */
};

/* A structured error answer.  Decide on error; aadsts is only a hint for logs. */
struct o365_oauth_error {
	long	http_status;		/* 400, 401, 429, 503; 0 if no HTTP answer */
	char	error[64];		/* "invalid_grant", "interaction_required", ... */
	char	description[512];	/* error_description, sanitised */
	long	aadsts;			/* first of error_codes (or parsed from "AADSTS<n>:"), 0 if none */
	char	trace_id[64];
	char	correlation_id[64];
	long	retry_after;		/* seconds from Retry-After, 0 if none */
};

/*
 * POST the grant to <authority>/<tenant>/oauth2/v2.0/token.
 * O365_OK: *tok_out holds a token (free with o365_token_free).  O365_E_AUTH:
 * the endpoint answered with an OAuth error (oerr filled: the caller decides
 * on oerr->error; device code polling gets "authorization_pending",
 * "slow_down", "authorization_declined", "expired_token" here).
 * O365_E_TEMP: 429 or 5xx (oerr->http_status, retry_after).  O365_E_PROTO:
 * not the JSON we expect (HTML, wrong types, a 200 without a token, another
 * HTTP status).  O365_E_TOOLONG: an answer over O365_MAX_HTTP_BODY.
 * O365_E_NET: no answer, or one cut short (fewer bytes than Content-Length).
 * O365_E_TLS (err->why has curl's reason), O365_E_TIMEOUT (the whole
 * exchange within dl; nothing sent when dl has already passed),
 * O365_E_CONFIG (authority not https://, tenant or client_id with characters
 * other than letters, digits, '.', '-', '_'; bad tls->min_version),
 * O365_E_INVAL (bad request fields: empty, CR/LF/NUL, too long; nothing sent).
 * oerr may be NULL.  Logs one LOG_DEBUG line (host, grant, status, error,
 * AADSTS, ms), never a secret.
 */
int	o365_oauth_token(const struct o365_oauth_opts *o, const struct o365_oauth_request *rq,
	    const struct o365_deadline *dl, const struct o365_log *lg,
	    struct o365_token **tok_out, struct o365_oauth_error *oerr,
	    struct o365_error *err) O365_MUST_CHECK;

/*
 * The URL of endpoint ("token", "devicecode") for o:
 * <authority>/<tenant>/oauth2/v2.0/<endpoint>, exactly as requests use it
 * (the "aud" of a client assertion).  O365_E_CONFIG as o365_oauth_token
 * (bad authority, tenant or client_id; too long for size).
 */
int	o365_oauth_endpoint_url(const struct o365_oauth_opts *o, const char *endpoint,
	    char *dst, size_t size, struct o365_error *err) O365_MUST_CHECK;

struct o365_devicecode {
	char	device_code[1024];
	char	user_code[64];
	char	verification_uri[256];
	char	message[512];
	long	interval;		/* seconds between polls (default 5) */
	long	expires_in;
};

/*
 * POST to <authority>/<tenant>/oauth2/v2.0/devicecode (RFC 8628 3.1).  The
 * caller shows out->message, then polls o365_oauth_token() with
 * O365_GRANT_DEVICE_CODE every out->interval seconds.  Errors as
 * o365_oauth_token.
 */
int	o365_oauth_devicecode(const struct o365_oauth_opts *o, const char *scope,
	    const struct o365_deadline *dl, const struct o365_log *lg,
	    struct o365_devicecode *out, struct o365_oauth_error *oerr,
	    struct o365_error *err) O365_MUST_CHECK;

void	o365_token_free(struct o365_token **tp);

/* ---- pure parsers (fuzzed) ---- */

/*
 * Parse a token endpoint answer body (len bytes, need not be NUL-terminated)
 * given its HTTP status; results as o365_oauth_token.  JSON must be one
 * object, nested at most 10 deep, valid UTF-8.  oerr may be NULL.
 */
int	o365_oauth_parse_token(long http_status, const char *body, size_t len,
	    struct o365_token **tok_out, struct o365_oauth_error *oerr,
	    struct o365_error *err) O365_MUST_CHECK;

int	o365_oauth_parse_devicecode(long http_status, const char *body, size_t len,
	    struct o365_devicecode *out, struct o365_oauth_error *oerr,
	    struct o365_error *err) O365_MUST_CHECK;

#endif
