/* sasl.h: base64 (OpenSSL EVP) and the SASL initial responses we send. */
#ifndef O365_SASL_H
#define O365_SASL_H

#include <stddef.h>
#include "err.h"
#include "secret.h"

enum o365_sasl_mech {
	O365_SASL_PLAIN = 1 << 0,
	O365_SASL_LOGIN = 1 << 1,
	O365_SASL_XOAUTH2 = 1 << 2,
};

/* Base64 of p[0..n) into a new secret (callers pass secrets through it). */
int	o365_base64_encode(const void *p, size_t n, struct o365_secret **out) O365_MUST_CHECK;

/* Decode base64 text (no whitespace) into a new secret.  O365_E_PROTO if malformed. */
int	o365_base64_decode(const char *s, size_t n, struct o365_secret **out) O365_MUST_CHECK;

/* base64("" NUL user NUL pass), RFC 4616.  Checks both as credentials first. */
int	o365_sasl_plain(const char *user, const char *pass, size_t passlen,
	    struct o365_secret **b64_out, struct o365_error *err) O365_MUST_CHECK;

/* base64("user=" user ^A "auth=Bearer " token ^A ^A), Google/Microsoft XOAUTH2. */
int	o365_sasl_xoauth2(const char *user, const char *token, size_t toklen,
	    struct o365_secret **b64_out, struct o365_error *err) O365_MUST_CHECK;

/* "plain" / "login" / "xoauth2" (case-insensitive) -> mech; 0 if unknown. */
int	o365_sasl_mech_parse(const char *name);
const char *o365_sasl_mech_name(int mech);	/* "PLAIN", "LOGIN", "XOAUTH2" */

#endif
