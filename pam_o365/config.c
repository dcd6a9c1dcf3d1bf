/*
 * config.c: /etc/o365/pam_o365.conf.  World-readable and free of secrets
 * (screen lockers read it as the user), loaded afresh on every call: the
 * module keeps no state between calls.
 */
#include <stddef.h>
#include <string.h>

#include "o365/conf.h"
#include "o365/oauth.h"
#include "pam_o365_int.h"

#define OFF(f)	offsetof(struct pam_o365_conf, f)
#define K(p, t, o)	.path = (p), .type = (t), .off = (o)

static const char *const methods[] = { "imap-login", "entra-ropc", NULL };
static const char *const tls_versions[] = { "1.2", "1.3", NULL };

static const struct o365_conf_key keys[] = {
	{ K("auth.method", O365_CONF_ENUM, OFF(auth.method)), .def_s = "imap-login",
	  .choices = methods },
	{ K("auth.verify_imap", O365_CONF_BOOL, OFF(auth.verify_imap)), .def_i = 1 },
	{ K("oauth.authority", O365_CONF_STR, OFF(oauth.authority)),
	  .def_s = O365_OAUTH_AUTHORITY },
	{ K("oauth.tenant", O365_CONF_STR, OFF(oauth.tenant)) },
	{ K("oauth.client_id", O365_CONF_STR, OFF(oauth.client_id)) },
	{ K("imap.host", O365_CONF_STR, OFF(imap.host)), .def_s = "outlook.office365.com" },
	{ K("imap.port", O365_CONF_INT, OFF(imap.port)), .def_i = 993, .min = 1, .max = 65535 },
	{ K("imap.timeout", O365_CONF_INT, OFF(imap.timeout)), .def_i = 10, .min = 1, .max = 300 },
	{ K("tls.ca_file", O365_CONF_STR, OFF(tls.ca_file)) },
	{ K("tls.ca_dir", O365_CONF_STR, OFF(tls.ca_dir)) },
	{ K("tls.min_version", O365_CONF_ENUM, OFF(tls.min_version)), .def_s = "1.2",
	  .choices = tls_versions },
	{ K("user.map", O365_CONF_STR, OFF(user.map)), .def_s = "%u" },
	{ K("user.lowercase", O365_CONF_BOOL, OFF(user.lowercase)), .def_i = 0 },
	{ K("scope.allow_users", O365_CONF_STRLIST, OFF(scope.allow_users)) },
	{ K("scope.deny_users", O365_CONF_STRLIST, OFF(scope.deny_users)) },
	{ K("scope.allow_groups", O365_CONF_STRLIST, OFF(scope.allow_groups)) },
	{ K("scope.deny_groups", O365_CONF_STRLIST, OFF(scope.deny_groups)) },
	{ K("scope.min_uid", O365_CONF_INT, OFF(scope.min_uid)), .def_i = 1000, .min = 0,
	  .max = 2147483647 },
	{ K("scope.allow_root", O365_CONF_BOOL, OFF(scope.allow_root)), .def_i = 0 },
};
#define NKEYS	(sizeof(keys) / sizeof(keys[0]))

static int
empty(const char *s)
{
	return s == NULL || *s == '\0';
}

/* Cross-key rules the key table cannot express. */
static int
conf_validate(const char *name, struct pam_o365_conf *c, struct o365_error *err)
{
	int r;

	if (strcmp(c->auth.method, "entra-ropc") == 0) {
		c->method = PAM_O365_ENTRA_ROPC;
		if (empty(c->oauth.tenant) || empty(c->oauth.client_id))
			return o365_error_set(err, O365_E_CONFIG,
			    "%s: auth.method entra-ropc needs oauth.tenant and oauth.client_id",
			    name);
		if (strncmp(c->oauth.authority, "https://", 8) != 0)
			return o365_error_set(err, O365_E_CONFIG,
			    "%s: oauth.authority must be an https:// URL", name);
	} else {
		c->method = PAM_O365_IMAP_LOGIN;
	}
	if (empty(c->imap.host))
		return o365_error_set(err, O365_E_CONFIG, "%s: imap.host is empty", name);
	if ((r = pam_o365_map_check(c->user.map, err)) != O365_OK) {
		char why[sizeof(err->why)];

		memcpy(why, err->why, sizeof(why));
		return o365_error_set(err, r, "%s: %s", name, why);
	}
	c->tls_opts.ca_file = empty(c->tls.ca_file) ? NULL : c->tls.ca_file;
	c->tls_opts.ca_dir = empty(c->tls.ca_dir) ? NULL : c->tls.ca_dir;
	if ((r = o365_tls_version_parse(c->tls.min_version, &c->tls_opts.min_version)) != O365_OK)
		return o365_error_set(err, r, "%s: tls.min_version must be \"1.2\" or \"1.3\"",
		    name);
	return O365_OK;
}

int
pam_o365_conf_load(const char *path, struct pam_o365_conf *conf, struct o365_error *err)
{
	int r;

	memset(conf, 0, sizeof(*conf));
	if ((r = o365_conf_load(path, keys, NKEYS, conf, err)) != O365_OK)
		return r;
	if ((r = conf_validate(path, conf, err)) != O365_OK)
		pam_o365_conf_free(conf);
	return r;
}

int
pam_o365_conf_load_string(const char *text, struct pam_o365_conf *conf,
    struct o365_error *err)
{
	int r;

	memset(conf, 0, sizeof(*conf));
	if ((r = o365_conf_load_string(text, "test.conf", keys, NKEYS, conf, err)) != O365_OK)
		return r;
	if ((r = conf_validate("test.conf", conf, err)) != O365_OK)
		pam_o365_conf_free(conf);
	return r;
}

void
pam_o365_conf_free(struct pam_o365_conf *conf)
{
	o365_conf_free(keys, NKEYS, conf);
	memset(conf, 0, sizeof(*conf));
}
