/* secret.h: passwords and tokens in buffers that are cleansed when freed. */
#ifndef O365_SECRET_H
#define O365_SECRET_H

#include <stddef.h>
#include <sys/types.h>
#include "err.h"

struct o365_secret {
	char	*data;		/* NUL-terminated; may hold anything but NUL */
	size_t	 len;
};

/*
 * A new secret of len bytes, not initialised (the caller fills all of them),
 * NUL-terminated at data[len].  O365_E_NOMEM.
 */
int	o365_secret_alloc(size_t len, struct o365_secret **out) O365_MUST_CHECK;

/* A copy of p[0..len) in a new secret.  O365_E_NOMEM. */
int	o365_secret_dup(const char *p, size_t len, struct o365_secret **out) O365_MUST_CHECK;

/* Cleanse and free; sets *sp to NULL.  NULL-safe. */
void	o365_secret_free(struct o365_secret **sp);

/* Cleanse n bytes at p (OPENSSL_cleanse); NULL-safe. */
void	o365_cleanse(void *p, size_t n);

/*
 * A user name or password we may send: not empty, at most O365_MAX_CREDENTIAL
 * bytes, no CR, LF or NUL.  O365_OK or O365_E_INVAL (err says which rule, and
 * never quotes the value).  what names it in the message: "password".
 */
int	o365_credential_check(const char *p, size_t len, const char *what,
	    struct o365_error *err) O365_MUST_CHECK;

/*
 * Read a secret file: opened O_NOFOLLOW|O_CLOEXEC, must be a regular file
 * owned by owner_uid (normally 0), not accessible by others (mode & 007 == 0),
 * at most O365_MAX_SECRET_FILE bytes.  One trailing LF (or CRLF) is removed.
 * O365_E_IO (missing, unreadable), O365_E_CONFIG (owner, mode, size, empty).
 */
int	o365_secret_read_file(const char *path, uid_t owner_uid,
	    struct o365_secret **out, struct o365_error *err) O365_MUST_CHECK;

#endif
