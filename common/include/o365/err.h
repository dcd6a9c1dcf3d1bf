/* err.h: one error type for the whole core. */
#ifndef O365_ERR_H
#define O365_ERR_H

#include <stddef.h>

#define O365_MUST_CHECK __attribute__((warn_unused_result))
#define O365_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define O365_API __attribute__((visibility("default")))

enum o365_err {
	O365_OK = 0,
	O365_E_NOMEM = -1,
	O365_E_INVAL = -2,	/* bad input, e.g. CR/LF in a name */
	O365_E_CONFIG = -3,
	O365_E_NET = -4,	/* resolve, connect, reset */
	O365_E_TIMEOUT = -5,
	O365_E_TLS = -6,	/* handshake or certificate */
	O365_E_PROTO = -7,	/* the server broke the protocol */
	O365_E_TOOLONG = -8,	/* a hard limit was hit */
	O365_E_AUTH = -9,	/* credentials rejected: NO / 535 */
	O365_E_TEMP = -10,	/* 4xx, NO [UNAVAILABLE], throttling */
	O365_E_PERM = -11,	/* 5xx other than auth */
	O365_E_IO = -12,	/* local file or disk error */
};

struct o365_error {		/* filled by the layer that failed */
	enum o365_err	code;
	int		reply;		/* 535, 0 if none */
	char		enhanced[12];	/* "5.7.139", "" if none */
	char		why[256];	/* for a sysadmin; sanitised, never a secret */
};

/* Short stable name of a code: "ok", "timeout", "auth", ... (for key=value logs). */
const char	*o365_err_name(int code);

/* Reset *err to O365_OK with empty fields.  err may be NULL. */
void	 o365_error_clear(struct o365_error *err);

/*
 * Record a failure: sets err->code and formats err->why (truncated to fit,
 * non-printables escaped).  err may be NULL.  Returns code, so callers can
 * write "return o365_error_set(err, O365_E_NET, ...)".  Never pass a secret.
 */
int	 o365_error_set(struct o365_error *err, int code, const char *fmt, ...)
	    O365_PRINTF(3, 4);

/*
 * Copy untrusted text (a server reply) into dst as printable ASCII: bytes
 * outside 0x20..0x7e become \xNN, at most dstsz-1 bytes, always
 * NUL-terminated; a cut is marked with "...".  Returns strlen(dst).
 */
size_t	 o365_sanitize(char *dst, size_t dstsz, const char *src, size_t srclen);

#endif
