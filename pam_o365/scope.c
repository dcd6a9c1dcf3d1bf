/*
 * scope.c: which users the module checks remotely.
 *
 * As in pam-krb5, the uid and group rules apply where the account exists
 * locally; a name with no local account is checked like any other (no login
 * can proceed without an account anyway, and refusing early would tell an
 * attacker which names exist).  Root is never checked remotely unless
 * scope.allow_root is set: a network outage or a compromised mailbox must not
 * decide root's login.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pam_o365_int.h"

static int
in_list(char *const *list, const char *name)
{
	if (list == NULL)
		return 0;
	for (; *list != NULL; list++)
		if (strcmp(*list, name) == 0)
			return 1;
	return 0;
}

static int
list_empty(char *const *list)
{
	return list == NULL || list[0] == NULL;
}

static int
in_groups(char *const *list, const struct pam_o365_account *acct)
{
	size_t i;

	for (i = 0; i < acct->ngroups; i++)
		if (in_list(list, acct->groups[i]))
			return 1;
	return 0;
}

enum pam_o365_scope
pam_o365_scope_decide(const struct pam_o365_conf *conf, const char *user,
    const struct pam_o365_account *acct, const char **why_out)
{
	int is_root = strcmp(user, "root") == 0 || (acct->exists && acct->uid == 0);
	int allow_by_user, allow_by_group, need_allow;

	*why_out = "in scope";
	if (in_list(conf->scope.deny_users, user)) {
		*why_out = "listed in scope.deny_users";
		return PAM_O365_OUT_DENY_USER;
	}
	if (is_root && !conf->scope.allow_root) {
		*why_out = "root (scope.allow_root is false)";
		return PAM_O365_OUT_ROOT;
	}
	if (acct->exists && !is_root && acct->uid < (uid_t)conf->scope.min_uid) {
		*why_out = "uid below scope.min_uid";
		return PAM_O365_OUT_MIN_UID;
	}
	if (acct->exists && in_groups(conf->scope.deny_groups, acct)) {
		*why_out = "member of a group in scope.deny_groups";
		return PAM_O365_OUT_DENY_GROUP;
	}
	/*
	 * Allow lists: when any applies, the user must match one of them.
	 * Group rules apply only to local accounts.
	 */
	allow_by_user = in_list(conf->scope.allow_users, user);
	allow_by_group = acct->exists && in_groups(conf->scope.allow_groups, acct);
	need_allow = !list_empty(conf->scope.allow_users) ||
	    (acct->exists && !list_empty(conf->scope.allow_groups));
	if (need_allow && !allow_by_user && !allow_by_group) {
		*why_out = "not in scope.allow_users or scope.allow_groups";
		return PAM_O365_OUT_NOT_ALLOWED;
	}
	return PAM_O365_IN_SCOPE;
}

void
pam_o365_account_free(struct pam_o365_account *acct)
{
	size_t i;

	if (acct->groups != NULL) {
		for (i = 0; i < acct->ngroups; i++)
			free(acct->groups[i]);
		free(acct->groups);
	}
	memset(acct, 0, sizeof(*acct));
}

/* getpwnam_r/getgrgid_r with a buffer that grows on ERANGE. */
static int
grow(char **buf, size_t *sz, struct o365_error *err)
{
	char *nb;

	if (*sz >= 1024 * 1024 || (nb = realloc(*buf, *sz * 2)) == NULL)
		return o365_error_set(err, O365_E_NOMEM, "out of memory (NSS buffer)");
	*buf = nb;
	*sz *= 2;
	return O365_OK;
}

int
pam_o365_account_lookup(const char *user, struct pam_o365_account *acct,
    struct o365_error *err)
{
	struct passwd pw, *pwp = NULL;
	gid_t *gids = NULL;
	char *buf = NULL;
	size_t bufsz = 4096, i;
	int ngids = 64, e, r = O365_OK;

	memset(acct, 0, sizeof(*acct));
	if ((buf = malloc(bufsz)) == NULL)
		return o365_error_set(err, O365_E_NOMEM, "out of memory");
	while ((e = getpwnam_r(user, &pw, buf, bufsz, &pwp)) == ERANGE)
		if ((r = grow(&buf, &bufsz, err)) != O365_OK)
			goto out;
	if (e != 0 && e != ENOENT && e != ESRCH && e != EBADF && e != EPERM) {
		r = o365_error_set(err, O365_E_IO, "getpwnam_r failed (errno %d)", e);
		goto out;
	}
	if (pwp == NULL)
		goto out;		/* no local account */
	acct->exists = 1;
	acct->uid = pw.pw_uid;

	for (;;) {
		int n = ngids;
		gid_t *ng;

		if ((ng = realloc(gids, (size_t)n * sizeof(*gids))) == NULL) {
			r = o365_error_set(err, O365_E_NOMEM, "out of memory");
			goto out;
		}
		gids = ng;
		if (getgrouplist(user, pw.pw_gid, gids, &n) >= 0) {
			ngids = n;
			break;
		}
		if (n <= ngids || n > PAM_O365_MAX_GROUPS) {
			/* cannot list them all: fail closed for deny_groups */
			r = o365_error_set(err, O365_E_IO, "more than %d groups", PAM_O365_MAX_GROUPS);
			goto out;
		}
		ngids = n;
	}
	if ((acct->groups = calloc((size_t)ngids + 1, sizeof(char *))) == NULL) {
		r = o365_error_set(err, O365_E_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < (size_t)ngids; i++) {
		struct group gr, *grp = NULL;

		while ((e = getgrgid_r(gids[i], &gr, buf, bufsz, &grp)) == ERANGE)
			if ((r = grow(&buf, &bufsz, err)) != O365_OK)
				goto out;
		if (grp == NULL || grp->gr_name == NULL)
			continue;	/* a gid without a name matches no list */
		if ((acct->groups[acct->ngroups] = strdup(grp->gr_name)) == NULL) {
			r = o365_error_set(err, O365_E_NOMEM, "out of memory");
			goto out;
		}
		acct->ngroups++;
	}
out:
	if (r != O365_OK)
		pam_o365_account_free(acct);
	free(gids);
	free(buf);
	return r;
}
