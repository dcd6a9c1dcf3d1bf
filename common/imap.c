/*
 * imap.c: the IMAP4rev1 client subset a login check needs.
 *
 * RFC 3501 / RFC 9051 (greeting, CAPABILITY, LOGIN, AUTHENTICATE, LOGOUT),
 * RFC 4959 (SASL-IR), RFC 7888 (LITERAL+ / LITERAL-), RFC 5530 (response
 * codes).  One command at a time: we send, then read untagged lines (bounded)
 * until the tagged reply carrying our tag.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "o365/buf.h"
#include "o365/imap.h"
#include "o365/limits.h"
#include "o365/sasl.h"
#include "o365/secret.h"

/* LITERAL- (RFC 7888 section 5): non-synchronising literals up to 4096 bytes. */
#define IMAP_LITERAL_MINUS_MAX	4096
/* How much server text goes into err->why. */
#define IMAP_WHY_TEXT		120

/*
 * RFC 3501 section 3: a session is not authenticated, then authenticated,
 * then logged out.  BROKEN: out of step with the server after a failed read
 * or write, a timeout, a BYE or a reply we could not follow (a late reply may
 * still arrive and be taken for the next one): no more commands.
 */
enum imap_state {
	IMAP_S_GREETING,
	IMAP_S_NOTAUTH,
	IMAP_S_AUTH,
	IMAP_S_LOGOUT,
	IMAP_S_BROKEN,
};

static const char *const imap_state_names[] = {
	[IMAP_S_GREETING] = "greeting",
	[IMAP_S_NOTAUTH] = "not authenticated",
	[IMAP_S_AUTH] = "authenticated",
	[IMAP_S_LOGOUT] = "logged out",
	[IMAP_S_BROKEN] = "out of step after an earlier error",
};

struct o365_imap {
	struct o365_conn	*conn;
	struct o365_log		 log;		/* a copy of the caller's sink */
	const struct o365_log	*lg;		/* &log, or NULL */
	unsigned int		 tagno;
	char			 tag[16];	/* the tag of the command in flight */
	char			 greeting[256];	/* sanitised */
	char			 caps[O365_MAX_IMAP_LINE + 1];	/* space-separated */
	enum imap_state		 state;
};

/* ---- small ASCII helpers (locale-independent: this runs inside sshd) ---- */

static int
imap_upper(int ch)
{
	return (ch >= 'a' && ch <= 'z') ? ch - 'a' + 'A' : ch;
}

/* Case-insensitive compare of p[0..n) with the NUL-terminated word w. */
static int
imap_word_eq(const char *p, size_t n, const char *w)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (w[i] == '\0' || imap_upper((unsigned char)p[i]) != imap_upper((unsigned char)w[i]))
			return 0;
	return w[n] == '\0';
}

/*
 * RFC 3501 section 9 (RFC 9051 section 9 is the same here):
 *   ATOM-CHAR       = <any CHAR except atom-specials>
 *   atom-specials   = "(" / ")" / "{" / SP / CTL / list-wildcards /
 *                     quoted-specials / resp-specials
 *   list-wildcards  = "%" / "*"
 *   quoted-specials = DQUOTE / "\"
 *   resp-specials   = "]"
 */
static int
imap_atom_char(unsigned char ch)
{
	if (ch <= 0x20 || ch >= 0x7f)
		return 0;
	return strchr("(){%*\"\\]", ch) == NULL;
}

/*
 *   tag             = 1*<any ASTRING-CHAR except "+">
 *   ASTRING-CHAR    = ATOM-CHAR / resp-specials
 */
static int
imap_tag_char(unsigned char ch)
{
	return ch != '+' && (imap_atom_char(ch) || ch == ']');
}

/* ---- the pure parser ---- */

/*
 * RFC 3501 section 7.1 / 9:
 *   resp-text       = ["[" resp-text-code "]" SP] text
 *   resp-text-code  = "ALERT" / ... / "CAPABILITY" SP ... /
 *                     atom [SP 1*<any TEXT-CHAR except "]">]
 *   text            = 1*TEXT-CHAR
 *   TEXT-CHAR       = <any CHAR except CR and LF>
 * Leniency: text may be empty (RFC 9051 servers send "A1 OK"), and bytes
 * above 0x7f are accepted in text (RFC 9051 allows UTF-8 there).  Strict:
 * a "[" without "]" is an error, the code must be an atom that fits
 * out->code, and its arguments, when a SP announces them, are not empty.
 */
static int
imap_parse_resp_text(const char *p, size_t n, struct o365_imap_resp *out)
{
	const char *close, *sp;
	size_t alen, i;

	if (n > 0 && p[0] == '[') {
		if ((close = memchr(p + 1, ']', n - 1)) == NULL)
			return O365_E_PROTO;
		sp = memchr(p + 1, ' ', (size_t)(close - (p + 1)));
		alen = (size_t)((sp != NULL ? sp : close) - (p + 1));
		if (alen == 0 || alen >= sizeof(out->code))
			return O365_E_PROTO;
		for (i = 0; i < alen; i++) {
			if (!imap_atom_char((unsigned char)p[1 + i]))
				return O365_E_PROTO;
			out->code[i] = (char)imap_upper((unsigned char)p[1 + i]);
		}
		out->code[alen] = '\0';
		if (sp != NULL) {
			out->code_args = sp + 1;
			out->code_args_len = (size_t)(close - (sp + 1));
			if (out->code_args_len == 0)
				return O365_E_PROTO;
		}
		n -= (size_t)(close + 1 - p);
		p = close + 1;
		if (n == 0) {		/* "[CODE]" with no text: lenient */
			out->text = p;
			out->text_len = 0;
			return O365_OK;
		}
		if (p[0] != ' ')
			return O365_E_PROTO;
		p++;
		n--;
	}
	out->text = p;
	out->text_len = n;
	return O365_OK;
}

/*
 * A literal announced at the end of a line of response data:
 *   literal         = "{" number "}" CRLF *CHAR8       (RFC 3501 section 9)
 *   literal8        = "~{" number64 "}" CRLF *OCTET    (RFC 9051 section 9)
 * 1 and *n_out when the line ends in "{digits}", 0 when it does not end in
 * a literal marker, O365_E_PROTO when the number is absurd (> 2^32-1).
 */
static int
imap_literal_marker(const char *p, size_t n, size_t *n_out)
{
	size_t i, digits = 0;
	uint64_t v = 0;

	*n_out = 0;
	if (n < 3 || p[n - 1] != '}')
		return 0;
	for (i = n - 1; i > 0 && p[i - 1] >= '0' && p[i - 1] <= '9'; i--)
		digits++;
	if (i == 0 || p[i - 1] != '{' || digits == 0)
		return 0;
	if (digits > 10)
		return O365_E_PROTO;
	for (; i < n - 1; i++)
		v = v * 10 + (uint64_t)(p[i] - '0');
	if (v > UINT32_MAX)
		return O365_E_PROTO;
	*n_out = (size_t)v;
	return 1;
}

/* The status word at p (up to SP or the end), or O365_IMAP_NONE. */
static enum o365_imap_status
imap_status_word(const char *p, size_t n, size_t *wlen)
{
	const char *sp = memchr(p, ' ', n);

	*wlen = sp != NULL ? (size_t)(sp - p) : n;
	if (imap_word_eq(p, *wlen, "OK"))
		return O365_IMAP_OK;
	if (imap_word_eq(p, *wlen, "NO"))
		return O365_IMAP_NO;
	if (imap_word_eq(p, *wlen, "BAD"))
		return O365_IMAP_BAD;
	if (imap_word_eq(p, *wlen, "BYE"))
		return O365_IMAP_BYE;
	if (imap_word_eq(p, *wlen, "PREAUTH"))
		return O365_IMAP_PREAUTH;
	return O365_IMAP_NONE;
}

/*
 * RFC 3501 section 9 (RFC 9051 section 9):
 *   continue-req    = "+" SP (resp-text / base64) CRLF
 *   response-data   = "*" SP (resp-cond-state / resp-cond-bye /
 *                     mailbox-data / message-data / capability-data) CRLF
 *   greeting        = "*" SP (resp-cond-auth / resp-cond-bye) CRLF
 *   response-tagged = tag SP resp-cond-state CRLF
 *   resp-cond-auth  = ("OK" / "PREAUTH") SP resp-text
 *   resp-cond-state = ("OK" / "NO" / "BAD") SP resp-text
 *   resp-cond-bye   = "BYE" SP resp-text
 * Status words are case-insensitive (section 9, note 3).  Leniency: "+"
 * alone (seen from some servers for an empty challenge) and a status word
 * without resp-text.  Other untagged data (CAPABILITY, EXISTS, ...) is
 * handed back as data; if it ends in a literal marker, out->literal says
 * how many bytes follow the line.
 */
int
o365_imap_parse_line(const char *line, size_t len, struct o365_imap_resp *out)
{
	const char *p, *sp;
	size_t n, wlen, i;
	int r;

	memset(out, 0, sizeof(*out));
	out->text = "";
	if (line == NULL || len == 0)
		return O365_E_PROTO;
	if (memchr(line, '\0', len) != NULL || memchr(line, '\r', len) != NULL ||
	    memchr(line, '\n', len) != NULL)
		return O365_E_PROTO;

	if (line[0] == '+') {
		out->kind = O365_IMAP_CONTINUE;
		if (len == 1) {
			out->text = line + 1;
			return O365_OK;
		}
		if (line[1] != ' ')
			return O365_E_PROTO;
		return imap_parse_resp_text(line + 2, len - 2, out);
	}

	if (line[0] == '*') {
		out->kind = O365_IMAP_UNTAGGED;
		if (len < 3 || line[1] != ' ' || line[2] == ' ')
			return O365_E_PROTO;
		p = line + 2;
		n = len - 2;
		out->status = imap_status_word(p, n, &wlen);
		if (out->status == O365_IMAP_NONE) {
			out->data = p;
			out->data_len = n;
			if ((r = imap_literal_marker(p, n, &out->literal)) < 0)
				return r;
			out->has_literal = r;
			return O365_OK;
		}
		if (wlen == n) {
			out->text = p + n;
			return O365_OK;
		}
		return imap_parse_resp_text(p + wlen + 1, n - wlen - 1, out);
	}

	out->kind = O365_IMAP_TAGGED;
	if ((sp = memchr(line, ' ', len)) == NULL)
		return O365_E_PROTO;
	n = (size_t)(sp - line);
	if (n == 0 || n >= sizeof(out->tag))
		return O365_E_PROTO;
	for (i = 0; i < n; i++) {
		if (!imap_tag_char((unsigned char)line[i]))
			return O365_E_PROTO;
		out->tag[i] = line[i];
	}
	out->tag[n] = '\0';
	p = sp + 1;
	n = len - n - 1;
	out->status = imap_status_word(p, n, &wlen);
	if (out->status != O365_IMAP_OK && out->status != O365_IMAP_NO &&
	    out->status != O365_IMAP_BAD)
		return O365_E_PROTO;
	if (wlen == n) {
		out->text = p + n;
		return O365_OK;
	}
	return imap_parse_resp_text(p + wlen + 1, n - wlen - 1, out);
}

/* ---- I/O ---- */

static int
imap_next_tag(struct o365_imap *im, struct o365_error *err)
{
	int n;

	im->tagno++;
	n = snprintf(im->tag, sizeof(im->tag), "A%03u", im->tagno);
	if (n < 0 || (size_t)n >= sizeof(im->tag))
		return o365_error_set(err, O365_E_PROTO, "too many IMAP commands");
	return O365_OK;
}

static void
imap_set_state(struct o365_imap *im, enum imap_state st)
{
	if (im->state == st || im->state == IMAP_S_BROKEN)
		return;
	o365_log(im->lg, LOG_DEBUG, "imap: %s -> %s", imap_state_names[im->state],
	    imap_state_names[st]);
	im->state = st;
}

/* A command that needs state want (or, for LOGOUT, any live state). */
static int
imap_usable(const struct o365_imap *im, enum imap_state want, struct o365_error *err)
{
	if (im->state == IMAP_S_BROKEN)
		return o365_error_set(err, O365_E_PROTO, "IMAP session unusable after an earlier error");
	if (want == IMAP_S_LOGOUT ? im->state == IMAP_S_LOGOUT : im->state != want)
		return o365_error_set(err, O365_E_PROTO, "IMAP command not allowed when %s",
		    imap_state_names[im->state]);
	return O365_OK;
}

static int
imap_write(struct o365_imap *im, const void *p, size_t n, const struct o365_deadline *dl,
    struct o365_error *err)
{
	int r;

	if ((r = o365_conn_write(im->conn, p, n, dl, err)) != O365_OK)
		imap_set_state(im, IMAP_S_BROKEN);
	return r;
}

/* Send n bytes; trace is what the log shows (never a secret), or NULL. */
static int
imap_send(struct o365_imap *im, const void *p, size_t n, const char *trace,
    const struct o365_deadline *dl, struct o365_error *err)
{
	if (trace != NULL)
		o365_log_trace(im->lg, "C", trace, strlen(trace));
	return imap_write(im, p, n, dl, err);
}

/* Send "<tag> <cmd>\r\n" for a command without secrets. */
static int
imap_send_cmd(struct o365_imap *im, const char *cmd, const struct o365_deadline *dl,
    struct o365_error *err)
{
	char line[128];
	int n, r;

	if ((r = imap_next_tag(im, err)) != O365_OK)
		return r;
	n = snprintf(line, sizeof(line), "%s %s\r\n", im->tag, cmd);
	if (n < 0 || (size_t)n >= sizeof(line))
		return o365_error_set(err, O365_E_INVAL, "IMAP command too long");
	o365_log_trace(im->lg, "C", line, (size_t)n - 2);
	return imap_write(im, line, (size_t)n, dl, err);
}

/* Read and parse one response line; *resp points into the conn's buffer. */
static int
imap_read(struct o365_imap *im, struct o365_imap_resp *resp,
    const struct o365_deadline *dl, struct o365_error *err)
{
	char *line;
	size_t len;
	int r;

	if ((r = o365_conn_getline(im->conn, O365_MAX_IMAP_LINE, &line, &len, dl, err)) != O365_OK)
		return r;
	o365_log_trace(im->lg, "S", line, len);
	if (o365_imap_parse_line(line, len, resp) != O365_OK)
		return o365_error_set(err, O365_E_PROTO, "malformed IMAP response: %.*s",
		    (int)(len > IMAP_WHY_TEXT ? IMAP_WHY_TEXT : len), line);
	return O365_OK;
}

/* Remember the capability list p[0..n) (replacing the one we had). */
static void
imap_set_caps(struct o365_imap *im, const char *p, size_t n)
{
	if (n >= sizeof(im->caps))
		n = sizeof(im->caps) - 1;	/* cannot happen: a line is shorter */
	memcpy(im->caps, p, n);
	im->caps[n] = '\0';
}

/*
 * Skip the literal announced at the end of an untagged line, and the rest of
 * that response (which may announce another literal).  *budget counts lines.
 */
static int
imap_skip_literals(struct o365_imap *im, size_t n, unsigned int *budget,
    const struct o365_deadline *dl, struct o365_error *err)
{
	char *line;
	size_t len;
	int r;

	for (;;) {
		if (n > O365_MAX_IMAP_LITERAL)
			return o365_error_set(err, O365_E_TOOLONG,
			    "server announced a %zu-byte literal (limit %d)", n, O365_MAX_IMAP_LITERAL);
		if ((r = o365_conn_read(im->conn, NULL, n, dl, err)) != O365_OK)
			return r;
		if (++*budget > O365_MAX_IMAP_UNTAGGED)
			return o365_error_set(err, O365_E_TOOLONG,
			    "more than %d untagged lines", O365_MAX_IMAP_UNTAGGED);
		if ((r = o365_conn_getline(im->conn, O365_MAX_IMAP_LINE, &line, &len, dl, err)) != O365_OK)
			return r;
		o365_log_trace(im->lg, "S", line, len);
		if (memchr(line, '\0', len) != NULL)
			return o365_error_set(err, O365_E_PROTO, "NUL byte in a response");
		if ((r = imap_literal_marker(line, len, &n)) < 0)
			return o365_error_set(err, O365_E_PROTO, "bad literal in a response");
		if (r == 0)
			return O365_OK;
	}
}

/* Is it "CAPABILITY" followed by SP or the end?  Sets *args. */
static int
imap_is_capability(const char *p, size_t n, const char **args, size_t *args_len)
{
	const size_t w = sizeof("CAPABILITY") - 1;

	if (n < w || !imap_word_eq(p, w, "CAPABILITY") || (n > w && p[w] != ' '))
		return 0;
	*args = n > w ? p + w + 1 : p + w;
	*args_len = n > w ? n - w - 1 : 0;
	return 1;
}

#define IMAP_WAIT_CONT		1	/* a continuation request ends the wait */
#define IMAP_WAIT_LOGOUT	2	/* BYE is expected */

/*
 * Read until the tagged reply to im->tag (or a continuation when allowed).
 * Untagged lines are bounded; capabilities are picked up on the way; a BYE
 * ends the session (O365_E_TEMP), except after LOGOUT.
 */
static int
imap_wait_once(struct o365_imap *im, int flags, struct o365_imap_resp *resp,
    const struct o365_deadline *dl, struct o365_error *err)
{
	unsigned int budget = 0;
	const char *args;
	size_t alen;
	int r, bye = 0;

	for (;;) {
		if ((r = imap_read(im, resp, dl, err)) != O365_OK) {
			if (r == O365_E_NET && bye && (flags & IMAP_WAIT_LOGOUT))
				return O365_OK;		/* closed after BYE */
			return r;
		}
		switch (resp->kind) {
		case O365_IMAP_TAGGED:
			if (strcmp(resp->tag, im->tag) != 0)
				return o365_error_set(err, O365_E_PROTO,
				    "reply tagged %s, expected %s", resp->tag, im->tag);
			if (strcmp(resp->code, "CAPABILITY") == 0 && resp->code_args != NULL)
				imap_set_caps(im, resp->code_args, resp->code_args_len);
			return O365_OK;
		case O365_IMAP_CONTINUE:
			if (!(flags & IMAP_WAIT_CONT))
				return o365_error_set(err, O365_E_PROTO,
				    "unexpected continuation request");
			return O365_OK;
		case O365_IMAP_UNTAGGED:
			break;
		default:
			return o365_error_set(err, O365_E_PROTO, "unknown response kind");
		}
		if (++budget > O365_MAX_IMAP_UNTAGGED)
			return o365_error_set(err, O365_E_TOOLONG,
			    "more than %d untagged lines", O365_MAX_IMAP_UNTAGGED);
		switch (resp->status) {
		case O365_IMAP_BYE:
			if (!(flags & IMAP_WAIT_LOGOUT))
				return o365_error_set(err, O365_E_TEMP,
				    "server ended the session: BYE %.*s",
				    (int)(resp->text_len > IMAP_WHY_TEXT ? IMAP_WHY_TEXT :
				    resp->text_len), resp->text);
			bye = 1;
			break;
		case O365_IMAP_PREAUTH:
			return o365_error_set(err, O365_E_PROTO, "unexpected PREAUTH");
		case O365_IMAP_OK:
		case O365_IMAP_NO:
		case O365_IMAP_BAD:
			if (strcmp(resp->code, "CAPABILITY") == 0 && resp->code_args != NULL)
				imap_set_caps(im, resp->code_args, resp->code_args_len);
			break;
		case O365_IMAP_NONE:
			if (imap_is_capability(resp->data, resp->data_len, &args, &alen) &&
			    !resp->has_literal)
				imap_set_caps(im, args, alen);
			if (resp->has_literal &&
			    (r = imap_skip_literals(im, resp->literal, &budget, dl, err)) != O365_OK)
				return r;
			break;
		default:
			return o365_error_set(err, O365_E_PROTO, "unknown response status");
		}
	}
}

static int
imap_wait(struct o365_imap *im, int flags, struct o365_imap_resp *resp,
    const struct o365_deadline *dl, struct o365_error *err)
{
	int r;

	if ((r = imap_wait_once(im, flags, resp, dl, err)) != O365_OK)
		imap_set_state(im, IMAP_S_BROKEN);
	return r;
}

/*
 * RFC 5530 codes that mean "try again later" rather than "wrong
 * credentials".  CONTACTADMIN is not among them: it says the account needs
 * an administrator (locked, disabled), which waiting will not fix, so it
 * stays O365_E_AUTH; its text reaches err->why for the sysadmin.
 */
static int
imap_code_is_temp(const char *code)
{
	static const char *const temp[] = { "UNAVAILABLE", "SERVERBUG", "INUSE", "LIMIT" };
	size_t i;

	for (i = 0; i < sizeof(temp) / sizeof(temp[0]); i++)
		if (strcmp(code, temp[i]) == 0)
			return 1;
	return 0;
}

/* Map a tagged reply to a result; what names the command for err->why. */
static int
imap_result(const struct o365_imap_resp *resp, const char *what, int is_auth,
    const char *extra, struct o365_error *err)
{
	const char *word;
	int code, tl = (int)(resp->text_len > IMAP_WHY_TEXT ? IMAP_WHY_TEXT : resp->text_len);

	switch (resp->status) {
	case O365_IMAP_OK:
		return O365_OK;
	case O365_IMAP_NO:
		word = "NO";
		if (imap_code_is_temp(resp->code))
			code = O365_E_TEMP;
		else
			code = is_auth ? O365_E_AUTH : O365_E_PROTO;
		break;
	case O365_IMAP_BAD:
		word = "BAD";
		code = O365_E_PROTO;
		break;
	default:
		return o365_error_set(err, O365_E_PROTO, "%s: bad tagged reply", what);
	}
	if (resp->code[0] != '\0')
		return o365_error_set(err, code, "%s refused: %s [%s] %.*s%s", what, word,
		    resp->code, tl, resp->text, extra);
	return o365_error_set(err, code, "%s refused: %s %.*s%s", what, word, tl,
	    resp->text, extra);
}

/* ---- connection setup ---- */

/*
 *   greeting        = "*" SP (resp-cond-auth / resp-cond-bye) CRLF
 * PREAUTH is refused: a login check must see the server ask for credentials.
 */
static int
imap_greeting(struct o365_imap *im, const struct o365_deadline *dl, struct o365_error *err)
{
	struct o365_imap_resp resp;
	int r, tl;

	if ((r = imap_read(im, &resp, dl, err)) != O365_OK)
		return r;
	tl = (int)(resp.text_len > IMAP_WHY_TEXT ? IMAP_WHY_TEXT : resp.text_len);
	if (resp.kind != O365_IMAP_UNTAGGED)
		return o365_error_set(err, O365_E_PROTO, "bad IMAP greeting");
	switch (resp.status) {
	case O365_IMAP_OK:
		o365_sanitize(im->greeting, sizeof(im->greeting), resp.text, resp.text_len);
		if (strcmp(resp.code, "CAPABILITY") == 0 && resp.code_args != NULL)
			imap_set_caps(im, resp.code_args, resp.code_args_len);
		return O365_OK;
	case O365_IMAP_PREAUTH:
		return o365_error_set(err, O365_E_PROTO, "server pre-authenticated");
	case O365_IMAP_BYE:
		return o365_error_set(err, O365_E_TEMP, "server refused the connection: BYE %.*s",
		    tl, resp.text);
	default:
		return o365_error_set(err, O365_E_PROTO, "bad IMAP greeting");
	}
}

int
o365_imap_start(struct o365_conn *c, const struct o365_deadline *dl,
    const struct o365_log *lg, struct o365_imap **out, struct o365_error *err)
{
	struct o365_imap_resp resp;
	struct o365_imap *im;
	int r;

	*out = NULL;
	o365_error_clear(err);
	if ((im = calloc(1, sizeof(*im))) == NULL) {
		o365_conn_close(&c);
		return o365_error_set(err, O365_E_NOMEM, "out of memory");
	}
	im->conn = c;
	if (lg != NULL) {
		im->log = *lg;
		im->lg = &im->log;
	}
	if ((r = imap_greeting(im, dl, err)) != O365_OK)
		goto fail;
	if (im->caps[0] == '\0') {
		if ((r = imap_send_cmd(im, "CAPABILITY", dl, err)) != O365_OK ||
		    (r = imap_wait(im, 0, &resp, dl, err)) != O365_OK ||
		    (r = imap_result(&resp, "CAPABILITY", 0, "", err)) != O365_OK)
			goto fail;
	}
	imap_set_state(im, IMAP_S_NOTAUTH);
	*out = im;
	return O365_OK;
fail:
	o365_imap_free(&im);
	return r;
}

int
o365_imap_connect(const char *host, unsigned int port, const struct o365_tls_opts *tls,
    const struct o365_deadline *dl, const struct o365_log *lg,
    struct o365_imap **out, struct o365_error *err)
{
	struct o365_conn *c = NULL;
	int r;

	*out = NULL;
	o365_error_clear(err);
	if ((r = o365_conn_connect(host, port, dl, lg, &c, err)) != O365_OK)
		return r;
	if ((r = o365_conn_start_tls(c, tls, host, dl, lg, err)) != O365_OK) {
		o365_conn_close(&c);
		return r;
	}
	return o365_imap_start(c, dl, lg, out, err);
}

int
o365_imap_has_cap(const struct o365_imap *im, const char *cap)
{
	const char *p = im->caps, *e;
	size_t n;

	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			return 0;
		e = strchr(p, ' ');
		n = e != NULL ? (size_t)(e - p) : strlen(p);
		if (imap_word_eq(p, n, cap))
			return 1;
		p += n;
	}
}

const char *
o365_imap_greeting(const struct o365_imap *im)
{
	return im->greeting;
}

struct o365_conn *
o365_imap_conn(struct o365_imap *im)
{
	return im->conn;
}

/* ---- LOGIN ---- */

#define IMAP_MAX_SPLITS	2	/* one synchronising literal per argument */

struct imap_cmd {
	struct o365_buf	 b;			/* secret: the whole command */
	size_t		 split[IMAP_MAX_SPLITS];	/* wait for "+" before these offsets */
	int		 nsplit;
};

/*
 * Append s[0..n) as an astring (RFC 3501 section 4.3 / 9):
 *   astring         = 1*ASTRING-CHAR / string
 *   string          = quoted / literal
 *   quoted          = DQUOTE *QUOTED-CHAR DQUOTE
 *   QUOTED-CHAR     = <any TEXT-CHAR except quoted-specials> / "\" quoted-specials
 *   literal         = "{" number ["+"] "}" CRLF *CHAR8      (RFC 7888 section 4)
 * A quoted string when every byte is printable 7-bit ASCII; else (UTF-8,
 * other 8-bit, control bytes) a literal: non-synchronising when the server
 * has LITERAL+, or LITERAL- and n <= 4096; otherwise synchronising, and the
 * command is split there to wait for the server's "+".
 */
static int
imap_put_astring(const struct o365_imap *im, struct imap_cmd *cmd, const char *s, size_t n)
{
	char hdr[32];
	size_t i;
	int quoted = 1, nonsync, r, k;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			quoted = 0;
	if (quoted) {
		if ((r = o365_buf_append(&cmd->b, "\"", 1)) != O365_OK)
			return r;
		for (i = 0; i < n; i++) {
			if ((s[i] == '"' || s[i] == '\\') &&
			    (r = o365_buf_append(&cmd->b, "\\", 1)) != O365_OK)
				return r;
			if ((r = o365_buf_append(&cmd->b, &s[i], 1)) != O365_OK)
				return r;
		}
		return o365_buf_append(&cmd->b, "\"", 1);
	}
	nonsync = o365_imap_has_cap(im, "LITERAL+") ||
	    (o365_imap_has_cap(im, "LITERAL-") && n <= IMAP_LITERAL_MINUS_MAX);
	k = snprintf(hdr, sizeof(hdr), "{%zu%s}\r\n", n, nonsync ? "+" : "");
	if (k < 0 || (size_t)k >= sizeof(hdr))
		return O365_E_INVAL;
	if ((r = o365_buf_append(&cmd->b, hdr, (size_t)k)) != O365_OK)
		return r;
	if (!nonsync) {
		if (cmd->nsplit >= IMAP_MAX_SPLITS)
			return O365_E_INVAL;
		cmd->split[cmd->nsplit++] = cmd->b.len;
	}
	return o365_buf_append(&cmd->b, s, n);
}

/*
 * Send a command held in cmd, pausing at every synchronising literal for the
 * server's continuation request.  On O365_OK *resp is the tagged reply.
 */
static int
imap_run_cmd(struct o365_imap *im, struct imap_cmd *cmd, struct o365_imap_resp *resp,
    const struct o365_deadline *dl, struct o365_error *err)
{
	size_t start = 0, end;
	int i, r;

	for (i = 0; i <= cmd->nsplit; i++) {
		end = i < cmd->nsplit ? cmd->split[i] : cmd->b.len;
		if ((r = imap_write(im, cmd->b.data + start, end - start, dl, err)) != O365_OK)
			return r;
		start = end;
		if ((r = imap_wait(im, i < cmd->nsplit ? IMAP_WAIT_CONT : 0, resp, dl, err)) != O365_OK)
			return r;
		if (resp->kind == O365_IMAP_TAGGED && i < cmd->nsplit &&
		    resp->status == O365_IMAP_OK) {
			/* an OK to a command we have not finished sending
			 * (the password literal is still ours) vouches for
			 * nothing: never report it as a successful login */
			imap_set_state(im, IMAP_S_BROKEN);
			return o365_error_set(err, O365_E_PROTO,
			    "server said OK before the whole command was sent");
		}
		if (resp->kind == O365_IMAP_TAGGED)
			return O365_OK;		/* refused before the literal */
	}
	return O365_OK;
}

int
o365_imap_login(struct o365_imap *im, const char *user, const char *pass, size_t passlen,
    const struct o365_deadline *dl, struct o365_error *err)
{
	struct o365_imap_resp resp;
	struct imap_cmd cmd;
	char trace[O365_MAX_CREDENTIAL + 64];
	int r, n;

	o365_error_clear(err);
	memset(&cmd, 0, sizeof(cmd));
	/* both credentials quoted, every byte escaped: 2 * (2 * max + 2) */
	o365_buf_init(&cmd.b, 4 * O365_MAX_CREDENTIAL + 128);
	cmd.b.secret = 1;
	if ((r = o365_credential_check(user, user != NULL ? strlen(user) : 0, "user name", err)) != O365_OK ||
	    (r = o365_credential_check(pass, passlen, "password", err)) != O365_OK)
		goto out;		/* nothing was sent */
	if ((r = imap_usable(im, IMAP_S_NOTAUTH, err)) != O365_OK)
		goto out;
	if (o365_imap_has_cap(im, "LOGINDISABLED")) {
		r = o365_error_set(err, O365_E_PERM, "server has LOGINDISABLED");
		goto out;
	}
	if ((r = imap_next_tag(im, err)) != O365_OK)
		goto out;
	if ((r = o365_buf_append(&cmd.b, im->tag, strlen(im->tag))) != O365_OK ||
	    (r = o365_buf_append(&cmd.b, " LOGIN ", 7)) != O365_OK ||
	    (r = imap_put_astring(im, &cmd, user, strlen(user))) != O365_OK ||
	    (r = o365_buf_append(&cmd.b, " ", 1)) != O365_OK ||
	    (r = imap_put_astring(im, &cmd, pass, passlen)) != O365_OK ||
	    (r = o365_buf_append(&cmd.b, "\r\n", 2)) != O365_OK) {
		r = o365_error_set(err, r, "cannot build the LOGIN command");
		goto out;
	}
	n = snprintf(trace, sizeof(trace), "%s LOGIN \"%s\" <secret>", im->tag, user);
	if (n > 0 && (size_t)n < sizeof(trace))
		o365_log_trace(im->lg, "C", trace, (size_t)n);
	if ((r = imap_run_cmd(im, &cmd, &resp, dl, err)) != O365_OK)
		goto out;
	if ((r = imap_result(&resp, "LOGIN", 1, "", err)) == O365_OK)
		imap_set_state(im, IMAP_S_AUTH);
out:
	o365_buf_free(&cmd.b);
	return r;
}

/* ---- AUTHENTICATE ---- */

/*
 * The "status" member of the JSON error an XOAUTH2 server sends as a
 * challenge (base64 of {"status":"400","schemes":"Bearer","scope":...}),
 * copied to dst sanitised; "" when absent or undecodable.
 */
static void
imap_xoauth2_status(const char *b64, size_t n, char *dst, size_t dstsz)
{
	struct o365_secret *json = NULL;
	const char *p, *e;

	dst[0] = '\0';
	if (n == 0 || o365_base64_decode(b64, n, &json) != O365_OK)
		return;
	/* json->data is NUL-terminated; a NUL inside only ends the search early */
	if ((p = strstr(json->data, "\"status\"")) != NULL) {
		p += sizeof("\"status\"") - 1;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == ':') {
			p++;
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p == '"') {
				p++;
				e = strchr(p, '"');
			} else {
				for (e = p; *e >= '0' && *e <= '9'; e++)
					;
			}
			if (e != NULL && e > p)
				o365_sanitize(dst, dstsz, p, (size_t)(e - p));
		}
	}
	o365_secret_free(&json);
}

/*
 * RFC 3501 section 6.2.2, RFC 4959:
 *   authenticate    = "AUTHENTICATE" SP auth-type [SP (base64 / "=")]
 *                     *(CRLF base64)
 * With SASL-IR and a line that fits, the response rides on the command;
 * else we wait for "+" and send it.  A further challenge is a failure report
 * (XOAUTH2: base64 JSON); we answer it with an empty line and read the
 * tagged NO.
 */
static int
imap_authenticate(struct o365_imap *im, const char *mech, const struct o365_secret *b64,
    const struct o365_deadline *dl, struct o365_error *err)
{
	struct o365_imap_resp resp;
	struct o365_buf line;
	char trace[96], status[64] = "", extra[96] = "", what[48];
	int r, n, ir;

	if ((r = imap_usable(im, IMAP_S_NOTAUTH, err)) != O365_OK)
		return r;
	o365_buf_init(&line, b64->len + 128);
	line.secret = 1;
	snprintf(what, sizeof(what), "AUTHENTICATE %s", mech);
	if ((r = imap_next_tag(im, err)) != O365_OK)
		goto out;
	ir = o365_imap_has_cap(im, "SASL-IR") &&
	    strlen(im->tag) + 1 + strlen(what) + 1 + b64->len <= O365_MAX_IMAP_LINE;
	if ((r = o365_buf_append(&line, im->tag, strlen(im->tag))) != O365_OK ||
	    (r = o365_buf_append(&line, " ", 1)) != O365_OK ||
	    (r = o365_buf_append(&line, what, strlen(what))) != O365_OK ||
	    (ir && (r = o365_buf_append(&line, " ", 1)) != O365_OK) ||
	    (ir && (r = o365_buf_append(&line, b64->data, b64->len)) != O365_OK) ||
	    (r = o365_buf_append(&line, "\r\n", 2)) != O365_OK) {
		r = o365_error_set(err, r, "cannot build the AUTHENTICATE command");
		goto out;
	}
	n = snprintf(trace, sizeof(trace), "%s %s%s", im->tag, what, ir ? " <secret>" : "");
	if (n > 0 && (size_t)n < sizeof(trace))
		o365_log_trace(im->lg, "C", trace, (size_t)n);
	if ((r = imap_write(im, line.data, line.len, dl, err)) != O365_OK)
		goto out;
	if ((r = imap_wait(im, IMAP_WAIT_CONT, &resp, dl, err)) != O365_OK)
		goto out;
	if (!ir && resp.kind == O365_IMAP_TAGGED && resp.status == O365_IMAP_OK) {
		/* OK before we sent any credentials checks nothing */
		imap_set_state(im, IMAP_S_BROKEN);
		r = o365_error_set(err, O365_E_PROTO,
		    "%s: server said OK before the credentials were sent", what);
		goto out;
	}
	if (!ir && resp.kind == O365_IMAP_CONTINUE) {
		o365_buf_reset(&line);
		if ((r = o365_buf_append(&line, b64->data, b64->len)) != O365_OK ||
		    (r = o365_buf_append(&line, "\r\n", 2)) != O365_OK) {
			r = o365_error_set(err, r, "cannot build the SASL response");
			goto out;
		}
		if ((r = imap_send(im, line.data, line.len, "<secret>", dl, err)) != O365_OK ||
		    (r = imap_wait(im, IMAP_WAIT_CONT, &resp, dl, err)) != O365_OK)
			goto out;
	}
	if (resp.kind == O365_IMAP_CONTINUE) {
		/* a failure report: an empty response ends the exchange */
		imap_xoauth2_status(resp.text, resp.text_len, status, sizeof(status));
		if (status[0] != '\0')
			snprintf(extra, sizeof(extra), " (status %s)", status);
		if ((r = imap_send(im, "\r\n", 2, "", dl, err)) != O365_OK ||
		    (r = imap_wait(im, 0, &resp, dl, err)) != O365_OK)
			goto out;
	}
	if ((r = imap_result(&resp, what, 1, extra, err)) == O365_OK)
		imap_set_state(im, IMAP_S_AUTH);
out:
	o365_buf_free(&line);
	return r;
}

int
o365_imap_auth_plain(struct o365_imap *im, const char *user, const char *pass,
    size_t passlen, const struct o365_deadline *dl, struct o365_error *err)
{
	struct o365_secret *b64 = NULL;
	int r;

	o365_error_clear(err);
	/* checks both as credentials: nothing is sent when they are refused */
	if ((r = o365_sasl_plain(user, pass, passlen, &b64, err)) != O365_OK)
		return r;
	r = imap_authenticate(im, "PLAIN", b64, dl, err);
	o365_secret_free(&b64);
	return r;
}

int
o365_imap_auth_xoauth2(struct o365_imap *im, const char *user, const char *token,
    size_t toklen, const struct o365_deadline *dl, struct o365_error *err)
{
	struct o365_secret *b64 = NULL;
	int r;

	o365_error_clear(err);
	/* no control byte in user, visible ASCII only in token (a ^A would
	 * forge a field): nothing is sent when they are refused */
	if ((r = o365_sasl_xoauth2(user, token, toklen, &b64, err)) != O365_OK)
		return r;
	r = imap_authenticate(im, "XOAUTH2", b64, dl, err);
	o365_secret_free(&b64);
	return r;
}

/* ---- LOGOUT ---- */

int
o365_imap_logout(struct o365_imap *im, const struct o365_deadline *dl, struct o365_error *err)
{
	struct o365_imap_resp resp;
	int r;

	o365_error_clear(err);
	if ((r = imap_usable(im, IMAP_S_LOGOUT, err)) != O365_OK)
		return r;
	if ((r = imap_send_cmd(im, "LOGOUT", dl, err)) != O365_OK) {
		/* The server may have said BYE and closed already (Exchange does
		 * after "NO LOGIN failed."): if a BYE is still buffered, that
		 * is the end we wanted. */
		if (r == O365_E_NET &&
		    imap_wait(im, IMAP_WAIT_LOGOUT, &resp, dl, NULL) == O365_OK &&
		    resp.kind == O365_IMAP_UNTAGGED && resp.status == O365_IMAP_BYE) {
			o365_error_clear(err);
			imap_set_state(im, IMAP_S_LOGOUT);
			return O365_OK;
		}
		return r;
	}
	if ((r = imap_wait(im, IMAP_WAIT_LOGOUT, &resp, dl, err)) != O365_OK)
		return r;
	imap_set_state(im, IMAP_S_LOGOUT);
	if (resp.kind != O365_IMAP_TAGGED)	/* closed after BYE */
		return O365_OK;
	return imap_result(&resp, "LOGOUT", 0, "", err);
}

void
o365_imap_free(struct o365_imap **imp)
{
	struct o365_imap *im;

	if (imp == NULL || (im = *imp) == NULL)
		return;
	o365_conn_close(&im->conn);
	free(im);
	*imp = NULL;
}
