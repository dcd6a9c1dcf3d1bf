/* config.c: /etc/o365/sendmail.conf, through the core's key table loader. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "flow.h"
#include "xoauth.h"

#define OFF(f) offsetof(struct sm_conf, f)

static const char *const tls_modes[] = { "starttls", "implicit", NULL };
static const char *const mechs[] = { "login", "plain", "xoauth2", NULL };
static const char *const rewrites[] = { "local", "always", "never", NULL };
static const char *const versions[] = { "1.2", "1.3", NULL };

static const struct o365_conf_key sm_keys[] = {
	{ .path = "smtp.host", .type = O365_CONF_STR, .off = OFF(smtp_host), .def_s = "smtp.office365.com" },
	{ .path = "smtp.port", .type = O365_CONF_INT, .off = OFF(smtp_port), .def_i = 587, .min = 1, .max = 65535 },
	{ .path = "smtp.timeout", .type = O365_CONF_INT, .off = OFF(smtp_timeout), .def_i = 30, .min = 1, .max = 600 },
	{ .path = "smtp.tls", .type = O365_CONF_ENUM, .off = OFF(smtp_tls), .def_s = "starttls", .choices = tls_modes },
	{ .path = "smtp.helo", .type = O365_CONF_STR, .off = OFF(smtp_helo) },
	{ .path = "tls.ca_file", .type = O365_CONF_STR, .off = OFF(tls_ca_file) },
	{ .path = "tls.ca_dir", .type = O365_CONF_STR, .off = OFF(tls_ca_dir) },
	{ .path = "tls.min_version", .type = O365_CONF_ENUM, .off = OFF(tls_min_version), .def_s = "1.2", .choices = versions },
	{ .path = "auth.mechanism", .type = O365_CONF_ENUM, .off = OFF(auth_mechanism), .def_s = "login", .choices = mechs },
	{ .path = "auth.user", .type = O365_CONF_STR, .off = OFF(auth_user) },
	{ .path = "auth.password_file", .type = O365_CONF_STR, .off = OFF(auth_password_file),
	    .def_s = "/etc/o365/sendmail.secret" },
	{ .path = "from.address", .type = O365_CONF_STR, .off = OFF(from_address) },
	{ .path = "from.rewrite", .type = O365_CONF_ENUM, .off = OFF(from_rewrite), .def_s = "local", .choices = rewrites },
	{ .path = "queue.dir", .type = O365_CONF_STR, .off = OFF(queue_dir), .def_s = "/var/spool/o365-sendmail" },
	{ .path = "queue.user", .type = O365_CONF_STR, .off = OFF(queue_user), .def_s = "o365-sendmail" },
	{ .path = "queue.max_age", .type = O365_CONF_INT, .off = OFF(queue_max_age), .def_i = 432000, .min = 60,
	    .max = 90 * 86400 },
	{ .path = "queue.bounce_to", .type = O365_CONF_STR, .off = OFF(queue_bounce_to) },
	{ .path = "aliases", .type = O365_CONF_MAP, .off = OFF(aliases) },
	{ .path = "aliases_file", .type = O365_CONF_STR, .off = OFF(aliases_file) },
	{ .path = "flow.connections", .type = O365_CONF_INT, .off = OFF(flow_connections),
	    .def_i = SM_FLOW_CONNECTIONS, .min = 1, .max = 64 },
	{ .path = "flow.per_minute", .type = O365_CONF_INT, .off = OFF(flow_per_minute),
	    .def_i = SM_FLOW_PER_MINUTE, .min = 1, .max = 10000 },
	{ .path = "flow.day_recipients", .type = O365_CONF_INT, .off = OFF(flow_day_recipients),
	    .def_i = SM_FLOW_DAY_RECIPIENTS, .min = 1, .max = 10000000 },
	{ .path = "flow.max_recipients", .type = O365_CONF_INT, .off = OFF(flow_max_recipients),
	    .def_i = SM_FLOW_MAX_RECIPIENTS, .min = 1, .max = SM_MAX_RCPTS },
	{ .path = "flow.hold_retry", .type = O365_CONF_INT, .off = OFF(flow_hold_retry),
	    .def_i = SM_FLOW_HOLD_RETRY, .min = 60, .max = 86400 },
	{ .path = "flow.hold_retry_max", .type = O365_CONF_INT, .off = OFF(flow_hold_retry_max),
	    .def_i = SM_FLOW_HOLD_RETRY_MAX, .min = 60, .max = 7 * 86400 },
	{ .path = "oauth.authority", .type = O365_CONF_STR, .off = OFF(oauth_authority),
	    .def_s = "https://login.microsoftonline.com" },
	{ .path = "oauth.tenant", .type = O365_CONF_STR, .off = OFF(oauth_tenant) },
	{ .path = "oauth.client_id", .type = O365_CONF_STR, .off = OFF(oauth_client_id) },
	{ .path = "oauth.client_secret_file", .type = O365_CONF_STR, .off = OFF(oauth_client_secret_file) },
	{ .path = "oauth.refresh_token_file", .type = O365_CONF_STR, .off = OFF(oauth_refresh_token_file) },
	{ .path = "oauth.certificate_file", .type = O365_CONF_STR, .off = OFF(oauth_certificate_file) },
	{ .path = "oauth.private_key_file", .type = O365_CONF_STR, .off = OFF(oauth_private_key_file) },
};

int
sm_conf_load(const char *path, struct sm_conf *c, struct o365_error *err)
{
	memset(c, 0, sizeof(*c));
	return o365_conf_load(path, sm_keys, sizeof(sm_keys) / sizeof(sm_keys[0]), c, err);
}

int
sm_conf_load_string(const char *text, struct sm_conf *c, struct o365_error *err)
{
	memset(c, 0, sizeof(*c));
	return o365_conf_load_string(text, "test.conf", sm_keys, sizeof(sm_keys) / sizeof(sm_keys[0]),
	    c, err);
}

void
sm_conf_free(struct sm_conf *c)
{
	o365_conf_free(sm_keys, sizeof(sm_keys) / sizeof(sm_keys[0]), c);
}

enum sm_rewrite
sm_conf_rewrite(const struct sm_conf *c)
{
	if (c->from_rewrite != NULL && strcmp(c->from_rewrite, "always") == 0)
		return SM_REWRITE_ALWAYS;
	if (c->from_rewrite != NULL && strcmp(c->from_rewrite, "never") == 0)
		return SM_REWRITE_NEVER;
	return SM_REWRITE_LOCAL;
}

const char *
sm_conf_domain(const struct sm_conf *c)
{
	const char *at;

	if (c->from_address == NULL || (at = strrchr(c->from_address, '@')) == NULL)
		return NULL;
	return at + 1;
}

void
sm_conf_flow_limits(const struct sm_conf *c, struct sm_flow_limits *l)
{
	sm_flow_limits_default(l);
	l->connections = (unsigned)c->flow_connections;
	l->per_minute = (unsigned)c->flow_per_minute;
	l->day_recipients = (unsigned)c->flow_day_recipients;
	l->max_recipients = (unsigned)c->flow_max_recipients;
}

int
sm_conf_check_relay(const struct sm_conf *c, struct o365_error *err)
{
	int r;

	if (c->from_address == NULL || strchr(c->from_address, '@') == NULL)
		return o365_error_set(err, O365_E_CONFIG,
		    "from.address must be set to the relay mailbox (user@domain)");
	if (c->auth_user == NULL || c->auth_user[0] == '\0')
		return o365_error_set(err, O365_E_CONFIG, "auth.user must be set");
	if (sm_xoauth_enabled(c) && (r = sm_xoauth_check_conf(c, err)) != O365_OK)
		return r;
	if (c->queue_dir == NULL || c->queue_dir[0] != '/')
		return o365_error_set(err, O365_E_CONFIG, "queue.dir must be an absolute path");
	return O365_OK;
}

/* xoauth2 config checks live here, not in xoauth.c: the submitting front end
 * links this file and must not pull in the token store (libcurl, OpenSSL). */

static int
set(const char *s)
{
	return s != NULL && s[0] != '\0';
}

int
sm_xoauth_enabled(const struct sm_conf *c)
{
	return c->auth_mechanism != NULL && strcmp(c->auth_mechanism, "xoauth2") == 0;
}

int
sm_xoauth_check_conf(const struct sm_conf *c, struct o365_error *err)
{
	int n;

	if (!set(c->oauth_tenant))
		return o365_error_set(err, O365_E_CONFIG, "auth.mechanism \"xoauth2\" needs oauth.tenant");
	if (!set(c->oauth_client_id))
		return o365_error_set(err, O365_E_CONFIG,
		    "auth.mechanism \"xoauth2\" needs oauth.client_id");
	if (set(c->oauth_certificate_file) != set(c->oauth_private_key_file))
		return o365_error_set(err, O365_E_CONFIG, "oauth.%s needs oauth.%s too (a "
		    "certificate credential is the PEM certificate and its private key)",
		    set(c->oauth_certificate_file) ? "certificate_file" : "private_key_file",
		    set(c->oauth_certificate_file) ? "private_key_file" : "certificate_file");
	n = set(c->oauth_client_secret_file) + set(c->oauth_certificate_file) +
	    set(c->oauth_refresh_token_file);
	if (n != 1)
		return o365_error_set(err, O365_E_CONFIG, "auth.mechanism \"xoauth2\" needs exactly "
		    "one credential, not %d: oauth.client_secret_file, oauth.certificate_file (with "
		    "private_key_file) or oauth.refresh_token_file", n);
	if (c->oauth_authority != NULL && strncmp(c->oauth_authority, "https://", 8) != 0)
		return o365_error_set(err, O365_E_CONFIG, "oauth.authority must start with https://");
	return O365_OK;
}
