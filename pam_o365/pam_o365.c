/*
 * pam_o365.c: the PAM glue.  pam_sm_authenticate checks the password with
 * Microsoft 365 (entra-ropc) or any IMAP server (imap-login);
 * pam_sm_setcred succeeds for the user this module authenticated in this
 * handle; pam_sm_acct_mgmt applies the scope rules.
 *
 * Safe inside the caller (sshd, sudo, screen lockers): no global state (the
 * config is read on every call), logs only through pam_syslog, prints
 * nothing, leaves signal handlers alone (the core writes with MSG_NOSIGNAL)
 * and never frees or changes libpam's copy of the password.
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAM_SM_AUTH
#define PAM_SM_ACCOUNT
#include <security/pam_appl.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "o365/deadline.h"
#include "o365/limits.h"
#include "o365/secret.h"
#include "pam_o365_int.h"

#define DATA_USER	"pam_o365_user"	/* pam_set_data: who we authenticated */

static void
pam_sink(void *ctx, int prio, const char *msg)
{
	pam_syslog((const pam_handle_t *)ctx, prio, "%s", msg);
}

static void
log_attempt(const struct o365_log *lg, int prio, const struct pam_o365_attempt *a)
{
	char line[1024];

	pam_o365_format_line(a, line, sizeof(line));
	o365_log(lg, prio, "%s", line);
}

static void
tell_user(pam_handle_t *pamh, int flags, const char *msg)
{
	if (msg == NULL || (flags & PAM_SILENT))
		return;
	(void)pam_prompt(pamh, PAM_ERROR_MSG, NULL, "%s", msg);
}

static void
free_data(pam_handle_t *pamh, void *data, int status)
{
	(void)pamh;
	(void)status;
	free(data);
}

/*
 * The password: an earlier module's PAM_AUTHTOK, else (unless
 * use_first_pass / use_authtok) one asked through the conversation and
 * stored as PAM_AUTHTOK for the modules below.  *pass_out points to
 * libpam's copy: never freed or changed here.
 */
static int
get_password(pam_handle_t *pamh, const struct pam_o365_args *args, const char **pass_out,
    const char **why_out)
{
	const void *item = NULL;
	char *resp = NULL;
	int rc;

	*pass_out = NULL;
	rc = pam_get_item(pamh, PAM_AUTHTOK, &item);
	if (rc == PAM_SUCCESS && item != NULL) {
		*pass_out = item;
		return PAM_SUCCESS;
	}
	if (args->pass == PAM_O365_PASS_USE) {
		*why_out = "no password from an earlier module (use_first_pass)";
		return PAM_AUTH_ERR;
	}
	rc = pam_prompt(pamh, PAM_PROMPT_ECHO_OFF, &resp, "%s", "Password: ");
	if (rc != PAM_SUCCESS || resp == NULL) {
		*why_out = "the conversation gave no password";
		free(resp);
		return rc == PAM_SUCCESS ? PAM_CONV_ERR : rc;
	}
	rc = pam_set_item(pamh, PAM_AUTHTOK, resp);
	o365_cleanse(resp, strlen(resp));
	free(resp);
	if (rc != PAM_SUCCESS) {
		*why_out = "cannot store PAM_AUTHTOK";
		return rc;
	}
	if ((rc = pam_get_item(pamh, PAM_AUTHTOK, &item)) != PAM_SUCCESS || item == NULL) {
		*why_out = "cannot read PAM_AUTHTOK back";
		return rc != PAM_SUCCESS ? rc : PAM_AUTHTOK_ERR;
	}
	*pass_out = item;
	return PAM_SUCCESS;
}

/*
 * Load the token client (entra-ropc only) from pam_o365_oauth.so next to
 * this module: the directory libpam loaded us from, never a search path or
 * an environment variable.  RTLD_NODELETE: libcurl's global state must
 * survive our dlclose (we never call curl_global_cleanup).
 */
static const struct pam_o365_oauth_api *
oauth_load(const struct o365_log *lg, void **handle_out)
{
	const struct pam_o365_oauth_api *(*fn)(void);
	const struct pam_o365_oauth_api *api;
	char path[PATH_MAX], *slash;
	Dl_info info;
	void *h;
	int n;

	*handle_out = NULL;
	if (dladdr((void *)oauth_load, &info) == 0 || info.dli_fname == NULL ||
	    info.dli_fname[0] != '/') {
		o365_log(lg, LOG_ERR, "cannot tell where pam_o365.so was loaded from");
		return NULL;
	}
	n = snprintf(path, sizeof(path), "%s", info.dli_fname);
	if (n < 0 || (size_t)n >= sizeof(path) || (slash = strrchr(path, '/')) == NULL)
		return NULL;
	n = snprintf(slash + 1, sizeof(path) - (size_t)(slash + 1 - path), "%s",
	    PAM_O365_OAUTH_HELPER);
	if (n < 0 || (size_t)n >= sizeof(path) - (size_t)(slash + 1 - path))
		return NULL;
	if ((h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE)) == NULL) {
		o365_log(lg, LOG_ERR, "cannot load the token client: %s", dlerror());
		return NULL;
	}
	*(void **)&fn = dlsym(h, PAM_O365_OAUTH_SYMBOL);
	if (fn == NULL || (api = fn()) == NULL) {
		o365_log(lg, LOG_ERR, "%s: no %s", path, PAM_O365_OAUTH_SYMBOL);
		dlclose(h);
		return NULL;
	}
	*handle_out = h;
	return api;
}

/* The scope rules for user; PAM_SUCCESS (in scope), PAM_IGNORE, or an error code. */
static int
in_scope(const struct pam_o365_conf *conf, const char *user, const struct o365_log *lg,
    const char **why_out)
{
	struct pam_o365_account acct;
	struct o365_error err;
	enum pam_o365_scope s;

	o365_error_clear(&err);
	if (pam_o365_account_lookup(user, &acct, &err) != O365_OK) {
		o365_log(lg, LOG_ERR, "account lookup failed: %s", err.why);
		*why_out = "local account lookup failed";
		return err.code == O365_E_NOMEM ? PAM_BUF_ERR : PAM_AUTHINFO_UNAVAIL;
	}
	s = pam_o365_scope_decide(conf, user, &acct, why_out);
	pam_o365_account_free(&acct);
	return s == PAM_O365_IN_SCOPE ? PAM_SUCCESS : PAM_IGNORE;
}

static int
load_conf(const struct pam_o365_args *args, const struct o365_log *lg,
    struct pam_o365_conf *conf)
{
	struct o365_error err;

	o365_error_clear(&err);
	if (pam_o365_conf_load(args->config, conf, &err) != O365_OK) {
		/* could not check: a stack may fall back to pam_unix */
		o365_log(lg, LOG_ALERT, "unusable configuration: %s", err.why);
		return PAM_AUTHINFO_UNAVAIL;
	}
	return PAM_SUCCESS;
}

PAM_EXTERN O365_API int
pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct o365_log lg = { pam_sink, pamh, 0 };
	struct pam_o365_conf conf;
	struct pam_o365_args args;
	struct pam_o365_attempt a;
	struct pam_o365_result res;
	struct o365_error err;
	struct timespec start;
	const char *user = NULL, *pass = NULL, *why = NULL;
	char login[O365_MAX_CREDENTIAL + 1];
	const struct pam_o365_oauth_api *oauth = NULL;
	void *helper = NULL;
	char *saved;
	int rc, have_conf = 0;

	(void)clock_gettime(CLOCK_MONOTONIC, &start);
	memset(&conf, 0, sizeof(conf));
	memset(&a, 0, sizeof(a));
	memset(&res, 0, sizeof(res));
	o365_error_clear(&err);
	login[0] = '\0';
	pam_o365_parse_args(argc, argv, &lg, &args);
	lg.debug = args.debug;

	if ((rc = pam_get_user(pamh, &user, NULL)) != PAM_SUCCESS || user == NULL) {
		o365_log(&lg, LOG_ERR, "cannot get the user name");
		return rc == PAM_SUCCESS ? PAM_USER_UNKNOWN : rc;
	}
	a.user = user;
	if ((rc = load_conf(&args, &lg, &conf)) != PAM_SUCCESS) {
		a.reason = "unusable configuration";
		goto out;
	}
	have_conf = 1;
	a.method = conf.auth.method;
	/* a bad name (empty, CR, LF, too long) is refused before anything is sent */
	if (pam_o365_map_user(conf.user.map, conf.user.lowercase, user, login,
	    sizeof(login), &err) != O365_OK) {
		rc = err.code == O365_E_CONFIG ? PAM_AUTHINFO_UNAVAIL : PAM_AUTH_ERR;
		a.reason = err.why;
		goto out;
	}
	a.login = login;
	if ((rc = in_scope(&conf, user, &lg, &why)) != PAM_SUCCESS) {
		if (rc == PAM_IGNORE) {
			char clean[256];

			/* not an attempt: debug only, so pam_unix users leave no noise */
			o365_sanitize(clean, sizeof(clean), login, strlen(login));
			o365_log(&lg, LOG_DEBUG, "user=%s not checked: %s", clean, why);
			pam_o365_conf_free(&conf);
			return PAM_IGNORE;
		}
		a.reason = why;
		goto out;
	}
	if ((rc = get_password(pamh, &args, &pass, &why)) != PAM_SUCCESS) {
		a.reason = why;
		goto out;
	}
	if (conf.method == PAM_O365_ENTRA_ROPC)
		oauth = oauth_load(&lg, &helper);
	pam_o365_check(&conf, login, pass, strlen(pass), &lg, NULL, oauth, &res);
	if (helper != NULL)
		dlclose(helper);
	rc = res.pam;
	a.reason = res.reason;
	a.server = res.server[0] != '\0' ? res.server : NULL;
	tell_user(pamh, flags, res.user_msg);
	if (rc == PAM_SUCCESS) {
		if ((saved = strdup(user)) == NULL ||
		    pam_set_data(pamh, DATA_USER, saved, free_data) != PAM_SUCCESS) {
			free(saved);
			rc = PAM_BUF_ERR;
			a.reason = "cannot record the authenticated user";
		}
	}
out:
	if (rc != PAM_SUCCESS)	/* an earlier success in this handle no longer counts */
		(void)pam_set_data(pamh, DATA_USER, NULL, NULL);
	a.pam = rc;
	a.ms = o365_elapsed_ms(&start);
	log_attempt(&lg, rc == PAM_SUCCESS ? LOG_INFO : (res.prio != 0 ? res.prio : LOG_ERR), &a);
	if (have_conf)
		pam_o365_conf_free(&conf);
	return rc;
}

/*
 * No credentials to establish: succeed for the user authenticated by this
 * module in this handle, and stay out of the way (PAM_IGNORE) otherwise, so
 * setcred never succeeds because of us for a user someone else checked.
 */
PAM_EXTERN O365_API int
pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	const void *data = NULL;
	const char *user = NULL;

	(void)flags;
	(void)argc;
	(void)argv;
	if (pam_get_data(pamh, DATA_USER, &data) != PAM_SUCCESS || data == NULL)
		return PAM_IGNORE;
	if (pam_get_item(pamh, PAM_USER, (const void **)&user) != PAM_SUCCESS || user == NULL)
		return PAM_IGNORE;
	return strcmp(user, (const char *)data) == 0 ? PAM_SUCCESS : PAM_IGNORE;
}

/*
 * The scope rules in the account stack: PAM_SUCCESS for a user in scope,
 * PAM_IGNORE for others (so pam_unix and friends decide for them).
 */
PAM_EXTERN O365_API int
pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct o365_log lg = { pam_sink, pamh, 0 };
	struct pam_o365_conf conf;
	struct pam_o365_args args;
	const char *user = NULL, *why = NULL;
	int rc;

	(void)flags;
	pam_o365_parse_args(argc, argv, &lg, &args);
	lg.debug = args.debug;
	if ((rc = pam_get_user(pamh, &user, NULL)) != PAM_SUCCESS || user == NULL)
		return rc == PAM_SUCCESS ? PAM_USER_UNKNOWN : rc;
	if (o365_credential_check(user, strlen(user), "user name", NULL) != O365_OK)
		return PAM_USER_UNKNOWN;
	if ((rc = load_conf(&args, &lg, &conf)) != PAM_SUCCESS)
		return rc;
	rc = in_scope(&conf, user, &lg, &why);
	o365_log(&lg, LOG_DEBUG, "account: %s", why != NULL ? why : "?");
	pam_o365_conf_free(&conf);
	return rc;
}
