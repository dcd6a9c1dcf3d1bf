/*
 * tokmod.c: o365-sendmail-oauth.so, the token store as a module.  The
 * delivering runner (xoauth_child.c) loads it in a short-lived child for
 * each token it needs, so libcurl and json-c never map into the process
 * that keeps the SMTP session.  Exports sm_tokmod_get() and
 * sm_tokmod_status() (--check, -v) only.
 */
#include "xoauth.h"

__attribute__((visibility("default"))) int
sm_tokmod_get(const struct o365_tokstore_cfg *cfg, int force, const struct o365_deadline *dl,
    const struct o365_log *lg, struct o365_secret **tok, time_t *exp,
    struct o365_oauth_error *oerr, struct o365_error *err)
{
	return o365_tokstore_get(cfg, force, dl, lg, tok, exp, oerr, err);
}

__attribute__((visibility("default"))) int
sm_tokmod_status(const struct sm_xoauth *x, FILE *fp, struct o365_error *err)
{
	return sm_xoauth_print_status(x, fp, err);
}
