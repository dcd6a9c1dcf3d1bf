/*
 * oauth_helper.c: pam_o365_oauth.so, the token client for entra-ropc.
 *
 * libcurl and its dependencies take a few milliseconds to load; keeping
 * them out of pam_o365.so spares every imap-login login that cost (see
 * bench/pam_login.sh).  pam_o365.so dlopen()s this object from its own
 * directory only when auth.method is entra-ropc.  It exports one symbol.
 */
#include "o365/oauth.h"
#include "pam_o365_int.h"

static const struct pam_o365_oauth_api api = {
	.token = o365_oauth_token,
	.token_free = o365_token_free,
};

O365_API const struct pam_o365_oauth_api *
pam_o365_oauth_api(void)
{
	return &api;
}
