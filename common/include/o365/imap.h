/*
 * imap.h: the IMAP4rev1 client subset a login check needs (RFC 3501):
 * greeting, CAPABILITY, LOGIN, AUTHENTICATE PLAIN / XOAUTH2 (SASL-IR, RFC 4959,
 * where advertised), LOGOUT.
 *
 * Results: O365_OK only after a tagged OK carrying our tag.  O365_E_AUTH: the
 * server said NO to the credentials (LOGIN / AUTHENTICATE), which includes
 * Exchange Online's "NO LOGIN failed." and NO [CONTACTADMIN] (an account an
 * administrator must fix).  O365_E_TEMP: NO with [UNAVAILABLE] / [SERVERBUG] /
 * [INUSE] / [LIMIT], or a BYE before our tagged reply.  O365_E_PERM: LOGIN
 * while the server advertises LOGINDISABLED (nothing sent).  O365_E_TOOLONG:
 * a line, literal or untagged-line count over the limits in limits.h.
 * O365_E_PROTO: a reply we cannot parse, a BAD, or a tagged OK that came
 * before the credentials were sent (ahead of a synchronising literal, or to
 * AUTHENTICATE before its "+").  O365_E_INVAL: a credential
 * refused before anything was sent (empty, CR, LF, NUL, too long).  Plus the
 * conn errors.  After a failed read or write, a timeout, a BYE or a reply we
 * could not follow, the session refuses further commands (O365_E_PROTO,
 * nothing sent); free it.  Secrets are never logged: traces show "<secret>"
 * in their place.
 */
#ifndef O365_IMAP_H
#define O365_IMAP_H

#include <stddef.h>
#include "err.h"
#include "deadline.h"
#include "log.h"
#include "tls.h"
#include "conn.h"

struct o365_imap;

/* Connect to host:port with implicit TLS, read the greeting and capabilities. */
int	o365_imap_connect(const char *host, unsigned int port, const struct o365_tls_opts *tls,
	    const struct o365_deadline *dl, const struct o365_log *lg,
	    struct o365_imap **out, struct o365_error *err) O365_MUST_CHECK;

/*
 * The same over an already connected (and normally TLS) conn; takes ownership
 * (c is closed on failure).  *lg is copied; its ctx must outlive im.  Reads the
 * greeting (PREAUTH -> O365_E_PROTO, BYE -> O365_E_TEMP) and, unless the
 * greeting carried [CAPABILITY ...], sends CAPABILITY.
 */
int	o365_imap_start(struct o365_conn *c, const struct o365_deadline *dl,
	    const struct o365_log *lg, struct o365_imap **out,
	    struct o365_error *err) O365_MUST_CHECK;

/* Non-zero if the server advertised cap ("AUTH=XOAUTH2", "SASL-IR"), case-insensitive. */
int	o365_imap_has_cap(const struct o365_imap *im, const char *cap);

/* The greeting text, sanitised (for diagnostics). */
const char *o365_imap_greeting(const struct o365_imap *im);

/* The underlying connection (for o365_conn_tls_info). */
struct o365_conn *o365_imap_conn(struct o365_imap *im);

/* LOGIN user pass: quoted strings with escapes, or literals where needed. */
int	o365_imap_login(struct o365_imap *im, const char *user, const char *pass, size_t passlen,
	    const struct o365_deadline *dl, struct o365_error *err) O365_MUST_CHECK;

/* AUTHENTICATE PLAIN (SASL-IR when advertised and the line fits); the blob is
 * o365_sasl_plain's (O365_E_INVAL, nothing sent, for refused credentials). */
int	o365_imap_auth_plain(struct o365_imap *im, const char *user, const char *pass,
	    size_t passlen, const struct o365_deadline *dl, struct o365_error *err) O365_MUST_CHECK;

/*
 * AUTHENTICATE XOAUTH2 with an access token (SASL-IR when advertised and the
 * line fits O365_MAX_IMAP_LINE, else after "+").  The blob is o365_sasl_xoauth2's
 * (O365_E_INVAL, nothing sent, for a bad user name or token).  A failure
 * challenge (base64 JSON) is answered with an empty line; its "status" goes
 * into err->why.
 */
int	o365_imap_auth_xoauth2(struct o365_imap *im, const char *user, const char *token,
	    size_t toklen, const struct o365_deadline *dl, struct o365_error *err) O365_MUST_CHECK;

/* LOGOUT and wait (within dl) for the tagged reply; errors are only informative. */
int	o365_imap_logout(struct o365_imap *im, const struct o365_deadline *dl,
	    struct o365_error *err);

/* Close and free; *imp = NULL.  NULL-safe. */
void	o365_imap_free(struct o365_imap **imp);

/* ---- pure parser (fuzzed) ---- */

enum o365_imap_kind { O365_IMAP_UNTAGGED, O365_IMAP_TAGGED, O365_IMAP_CONTINUE };
enum o365_imap_status { O365_IMAP_NONE, O365_IMAP_OK, O365_IMAP_NO, O365_IMAP_BAD,
	O365_IMAP_BYE, O365_IMAP_PREAUTH };

struct o365_imap_resp {
	enum o365_imap_kind	kind;
	enum o365_imap_status	status;		/* NONE for other untagged data (CAPABILITY, ...) */
	char			tag[32];	/* tagged only */
	char			code[64];	/* resp-text-code atom: "UNAVAILABLE", "CAPABILITY" */
	const char		*code_args;	/* rest of the code up to ']' (in line), or NULL */
	size_t			code_args_len;
	const char		*text;		/* human text (in line), may be "" */
	size_t			text_len;	/* bytes of text (the line need not be NUL-terminated) */
	const char		*data;		/* untagged data after "* " when status is NONE */
	size_t			data_len;
	size_t			literal;	/* line ends in {n}: n bytes follow; 0 otherwise */
	int			has_literal;
};

/*
 * Parse one response line (without CRLF); out points into line.  O365_OK or
 * O365_E_PROTO (bad tag, unknown status, "[" without "]", CR/LF/NUL, ...).
 * A literal marker is only recognised at the end of untagged data.
 */
int	o365_imap_parse_line(const char *line, size_t len, struct o365_imap_resp *out) O365_MUST_CHECK;

#endif
