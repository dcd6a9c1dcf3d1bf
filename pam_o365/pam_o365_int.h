/*
 * pam_o365_int.h: private declarations shared by pam_o365.so, o365-authtest
 * and their unit tests.  The pure parts (arguments, user mapping, scope
 * decisions, outcome tables, log lines) take no PAM handle and do no I/O, so
 * they can be tested one case at a time.
 */
#ifndef PAM_O365_INT_H
#define PAM_O365_INT_H

#include <stddef.h>
#include <sys/types.h>

#include "o365/err.h"
#include "o365/log.h"
#include "o365/oauth.h"
#include "o365/tls.h"

#define PAM_O365_DEFAULT_CONFIG	"/etc/o365/pam_o365.conf"
#define PAM_O365_MAX_GROUPS	1024	/* supplementary groups looked at per user */

/* ---- configuration (config.c) ---- */

enum pam_o365_method { PAM_O365_IMAP_LOGIN = 1, PAM_O365_ENTRA_ROPC = 2 };

struct pam_o365_conf {
	struct {
		char	*method;	/* "imap-login" | "entra-ropc" */
		int	 verify_imap;
	} auth;
	struct {
		char	*authority;
		char	*tenant;
		char	*client_id;
	} oauth;
	struct {
		char	*host;
		int	 port;
		int	 timeout;	/* seconds, the whole attempt */
	} imap;
	struct {
		char	*ca_file;
		char	*ca_dir;
		char	*min_version;	/* "1.2" | "1.3" */
	} tls;
	struct {
		char	*map;		/* "%u", "%u@contoso.com" */
		int	 lowercase;
	} user;
	struct {
		char	**allow_users;
		char	**deny_users;
		char	**allow_groups;
		char	**deny_groups;
		int	  min_uid;
		int	  allow_root;
	} scope;

	/* derived by pam_o365_conf_load, not keys */
	enum pam_o365_method	method;
	struct o365_tls_opts	tls_opts;
};

/*
 * Load and validate path (libconfig).  conf is zeroed first.  O365_E_IO or
 * O365_E_CONFIG with err->why naming the file, line and key.  On success the
 * caller frees with pam_o365_conf_free.
 */
int	pam_o365_conf_load(const char *path, struct pam_o365_conf *conf,
	    struct o365_error *err) O365_MUST_CHECK;
/* The same from text (tests). */
int	pam_o365_conf_load_string(const char *text, struct pam_o365_conf *conf,
	    struct o365_error *err) O365_MUST_CHECK;
void	pam_o365_conf_free(struct pam_o365_conf *conf);

/* ---- module arguments (policy.c) ---- */

enum pam_o365_pass_mode {
	PAM_O365_PASS_TRY = 0,	/* default, try_first_pass: an earlier one, else prompt */
	PAM_O365_PASS_USE,	/* use_first_pass, use_authtok: only an earlier one */
};

struct pam_o365_args {
	const char		*config;	/* points into argv or the default */
	int			 debug;
	enum pam_o365_pass_mode	 pass;
	int			 nunknown;	/* unknown arguments seen (logged) */
};

/*
 * Parse the module arguments.  Unknown ones are reported through lg at
 * LOG_ERR and otherwise ignored (as pam_unix does).  Never fails.
 */
void	pam_o365_parse_args(int argc, const char **argv, const struct o365_log *lg,
	    struct pam_o365_args *out);

/* ---- user mapping (policy.c) ---- */

/*
 * Check the PAM user name (not empty, no CR, LF or NUL, at most
 * O365_MAX_CREDENTIAL bytes) and expand map with it: "%u" is the user,
 * "%%" a percent sign; anything else after '%' is O365_E_CONFIG.  With
 * lowercase, ASCII letters of the result are folded (UTF-8 bytes are left
 * alone).  The result is checked as a credential as well.
 * O365_E_INVAL (bad user), O365_E_CONFIG, O365_E_TOOLONG (out too small).
 */
int	pam_o365_map_user(const char *map, int lowercase, const char *user,
	    char *out, size_t outsz, struct o365_error *err) O365_MUST_CHECK;

/* O365_OK if map is a valid template (validated once at load). */
int	pam_o365_map_check(const char *map, struct o365_error *err) O365_MUST_CHECK;

/* ---- scope (scope.c) ---- */

struct pam_o365_account {
	int	 exists;		/* a local (NSS) account with this name */
	uid_t	 uid;
	char	**groups;		/* names of its groups, primary included */
	size_t	 ngroups;
};

enum pam_o365_scope {
	PAM_O365_IN_SCOPE = 0,
	PAM_O365_OUT_DENY_USER,
	PAM_O365_OUT_ROOT,
	PAM_O365_OUT_MIN_UID,
	PAM_O365_OUT_DENY_GROUP,
	PAM_O365_OUT_NOT_ALLOWED,
};

/*
 * Decide whether user is checked remotely.  Pure: acct describes the local
 * account (exists == 0: none, then only the name rules apply).
 * *why_out gets a short static reason for the log.
 */
enum pam_o365_scope pam_o365_scope_decide(const struct pam_o365_conf *conf, const char *user,
	    const struct pam_o365_account *acct, const char **why_out);

/* Fill *acct from NSS (getpwnam_r, getgrouplist, getgrgid_r).  O365_OK (also
 * when there is no such account: exists = 0), O365_E_NOMEM, O365_E_IO. */
int	pam_o365_account_lookup(const char *user, struct pam_o365_account *acct,
	    struct o365_error *err) O365_MUST_CHECK;
void	pam_o365_account_free(struct pam_o365_account *acct);

/* ---- outcomes (policy.c) ---- */

/*
 * What one attempt came to: the PAM code, a short reason for the log, an
 * optional message for the user (PAM_ERROR_MSG), and the syslog level.
 */
struct pam_o365_outcome {
	int		 pam;
	int		 prio;
	const char	*reason;	/* static text, or NULL: use err->why */
	const char	*user_msg;	/* static text or NULL */
};

/* Map a core result (imap-login, or the IMAP step of entra-ropc). */
void	pam_o365_outcome_imap(int rc, struct pam_o365_outcome *out);

/* Map the token endpoint's result for entra-ropc (rc of o365_oauth_token). */
void	pam_o365_outcome_ropc(int rc, const struct o365_oauth_error *oerr,
	    struct pam_o365_outcome *out);

/* The IMAP step after a token was issued: a NO there is not a wrong password. */
void	pam_o365_outcome_xoauth2(int rc, struct pam_o365_outcome *out);

/* Short name of a PAM code for the log: "success", "auth_err", ... */
const char *pam_o365_result_name(int pam);

/* ---- the log line (policy.c) ---- */

struct pam_o365_attempt {
	const char	*user;		/* PAM user, untrusted */
	const char	*login;		/* mapped name, or NULL */
	const char	*method;	/* "imap-login" | "entra-ropc" */
	const char	*server;	/* "host:port", or NULL */
	int		 pam;
	const char	*reason;	/* untrusted text allowed: it is escaped */
	long		 ms;
};

/*
 * Format one key=value line: user=.. login=.. method=.. server=..
 * result=.. reason=".." ms=..  Values are sanitised; quotes and
 * backslashes in the reason are escaped.  Always NUL-terminates (a cut is
 * marked "...").
 */
void	pam_o365_format_line(const struct pam_o365_attempt *a, char *out, size_t outsz);

/* ---- the check itself (check.c): shared by the module and o365-authtest ---- */

struct o365_imap;
struct o365_token;

/* o365-authtest watches the steps; the module passes NULL. */
struct pam_o365_observer {
	void	(*step)(void *ctx, const char *what, const char *detail);
	void	(*imap)(void *ctx, struct o365_imap *im);	/* after the greeting */
	void	(*token)(void *ctx, int rc, const struct o365_token *tok,
		    const struct o365_oauth_error *oerr, const struct o365_error *err);
	void	 *ctx;
};

/*
 * The token client, reached through a table: pam_o365.so loads it from
 * pam_o365_oauth.so (next to itself) only for entra-ropc, so an imap-login
 * login does not pay for loading libcurl and its dependencies.
 * o365-authtest links it directly (pam_o365_oauth_direct).
 */
struct pam_o365_oauth_api {
	int	(*token)(const struct o365_oauth_opts *o, const struct o365_oauth_request *rq,
		    const struct o365_deadline *dl, const struct o365_log *lg,
		    struct o365_token **tok_out, struct o365_oauth_error *oerr,
		    struct o365_error *err);
	void	(*token_free)(struct o365_token **tp);
};

#define PAM_O365_OAUTH_HELPER	"pam_o365_oauth.so"
#define PAM_O365_OAUTH_SYMBOL	"pam_o365_oauth_api"
/* What pam_o365_oauth.so exports (its only symbol). */
const struct pam_o365_oauth_api *pam_o365_oauth_api(void);

struct pam_o365_result {
	int		 pam;		/* PAM_SUCCESS only after a positive answer */
	int		 prio;		/* syslog level for the attempt's line */
	char		 reason[320];	/* sanitised, never a secret */
	const char	*user_msg;	/* static text for PAM_ERROR_MSG, or NULL */
	char		 server[320];	/* "host:port" last talked to */
};

/*
 * Check login / pass with conf's method, all of it within imap.timeout.
 * The password is checked (not empty, no CR, LF or NUL) before anything is
 * sent.  pass is not copied except into cleansed buffers.  Fills *res.
 */
void	pam_o365_check(const struct pam_o365_conf *conf, const char *login,
	    const char *pass, size_t passlen, const struct o365_log *lg,
	    const struct pam_o365_observer *obs, const struct pam_o365_oauth_api *oauth,
	    struct pam_o365_result *res);

#endif
