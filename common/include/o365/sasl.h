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

/* Base64 of p[0..n) into a new secret (callers pass secrets through it).
 * n == 0 gives "".  O365_E_NOMEM, O365_E_TOOLONG (n near INT_MAX). */
int	o365_base64_encode(const void *p, size_t n, struct o365_secret **out) O365_MUST_CHECK;

/*
 * Decode base64 text (no whitespace) into a new secret (NUL-terminated; the
 * data may hold NUL bytes, len is the true length).  Strict RFC 4648: length
 * a multiple of 4, only the standard alphabet, "=" only as the last one or
 * two characters, unused bits zero.  O365_E_PROTO if malformed, O365_E_NOMEM.
 */
int	o365_base64_decode(const char *s, size_t n, struct o365_secret **out) O365_MUST_CHECK;

/* base64("" NUL user NUL pass), RFC 4616.  Checks both with
 * o365_credential_check() first (O365_E_INVAL, nothing built). */
int	o365_sasl_plain(const char *user, const char *pass, size_t passlen,
	    struct o365_secret **b64_out, struct o365_error *err) O365_MUST_CHECK;

/* base64("user=" user ^A "auth=Bearer " token ^A ^A), Google/Microsoft XOAUTH2.
 * user: o365_credential_check() and no control byte; token:
 * o365_sasl_token_check().  O365_E_INVAL (nothing built), O365_E_NOMEM. */
int	o365_sasl_xoauth2(const char *user, const char *token, size_t toklen,
	    struct o365_secret **b64_out, struct o365_error *err) O365_MUST_CHECK;

/*
 * An OAuth access or refresh token we may send: not empty, at most
 * O365_MAX_TOKEN bytes, visible ASCII only (0x21..0x7e: RFC 6750's b64token
 * and JWTs fit; a space, CR, LF or NUL does not).  O365_OK or O365_E_INVAL;
 * the message names what and never quotes the value.
 */
int	o365_sasl_token_check(const char *p, size_t len, const char *what,
	    struct o365_error *err) O365_MUST_CHECK;

/* "plain" / "login" / "xoauth2" (case-insensitive) -> mech; 0 if unknown or NULL. */
int	o365_sasl_mech_parse(const char *name);
const char *o365_sasl_mech_name(int mech);	/* "PLAIN", "LOGIN", "XOAUTH2"; "UNKNOWN" */

#endif
