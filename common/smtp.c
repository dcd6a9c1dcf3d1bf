/*
 * smtp.c: an ESMTP submission client (RFC 5321, 3207, 4954, 2920, 6152, 6531,
 * 2034/3463).  The engine reports what happened; relay.c decides.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "o365/buf.h"
#include "o365/sasl.h"
#include "o365/secret.h"
#include "o365/smtp.h"
#include "smtp_int.h"

/* DATA is read from the file and written to the server in chunks this big. */
#define SMTP_CHUNK	65536

enum smtp_state {
	SMTP_GREETING,
	SMTP_EHLO,
	SMTP_HELO,
	SMTP_STARTTLS,
	SMTP_AUTH,
	SMTP_MAIL,
	SMTP_RCPT,
	SMTP_DATA,
	SMTP_DOT,
	SMTP_RSET,
	SMTP_NOOP,
	SMTP_QUIT,
};

static const char *const smtp_state_names[] = {
	[SMTP_GREETING] = "greeting",
	[SMTP_EHLO] = "EHLO",
	[SMTP_HELO] = "HELO",
	[SMTP_STARTTLS] = "STARTTLS",
	[SMTP_AUTH] = "AUTH",
	[SMTP_MAIL] = "MAIL FROM",
	[SMTP_RCPT] = "RCPT TO",
	[SMTP_DATA] = "DATA",
	[SMTP_DOT] = "end of data",
	[SMTP_RSET] = "RSET",
	[SMTP_NOOP] = "NOOP",
	[SMTP_QUIT] = "QUIT",
};

struct o365_smtp {
	struct o365_conn	*conn;
	struct o365_log		 lgcopy;
	const struct o365_log	*lg;		/* &lgcopy, or NULL */
	struct o365_smtp_caps	 caps;
	struct o365_smtp_reply	 last;
	char			 helo[O365_MAX_HOSTNAME + 1];
	unsigned		 assume_tls:1;	/* tests only (smtp_int.h) */
	unsigned		 broken:1;	/* 421, I/O or protocol error: only close */
};

/* ---- pure parsers -------------------------------------------------------- */

/*
 * RFC 5321 4.2:
 *   Reply-line = *( Reply-code "-" [ textstring ] CRLF )
 *                Reply-code [ SP textstring ] CRLF
 *   Reply-code = %x32-35 %x30-35 %x30-39
 *   textstring = 1*(%d09 / %d32-126)
 * Control characters (other than HT) and DEL are refused.  Bytes >= 0x80 are
 * let through: some servers put UTF-8 in their texts, and every text is
 * sanitised before it reaches a log or an error anyway.
 */
int
o365_smtp_parse_reply_line(const char *line, size_t len, int *code_out, int *more_out,
    const char **text_out)
{
	size_t i;

	if (line == NULL || len < 3)
		return O365_E_PROTO;
	if (line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
	    line[2] < '0' || line[2] > '9')
		return O365_E_PROTO;
	if (len > 3 && line[3] != '-' && line[3] != ' ')
		return O365_E_PROTO;
	for (i = 4; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return O365_E_PROTO;
	}
	*code_out = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	*more_out = len > 3 && line[3] == '-';
	*text_out = line + (len > 3 ? 4 : 3);
	return O365_OK;
}

/* 1*3digit; returns the number of digits, 0 when none or more than 3. */
static size_t
smtp_digits13(const char *p)
{
	size_t n = 0;

	while (n < 4 && p[n] >= '0' && p[n] <= '9')
		n++;
	return n >= 1 && n <= 3 ? n : 0;
}

/*
 * RFC 3463 section 2 (as RFC 2034 section 4 uses it in replies):
 *   status-code = class "." subject "." detail
 *   class       = "2" / "4" / "5"
 *   subject     = 1*3digit
 *   detail      = 1*3digit
 * followed by SP, HT or the end of the text.  The length returned includes
 * the blanks after the code, so text + n is where the human text starts.
 */
size_t
o365_smtp_parse_enhanced(const char *text, char out[12])
{
	const char *p = text;
	size_t n, code;

	out[0] = '\0';
	if (text == NULL || (*p != '2' && *p != '4' && *p != '5'))
		return 0;
	p++;
	for (int part = 0; part < 2; part++) {
		if (*p != '.')
			return 0;
		p++;
		if ((n = smtp_digits13(p)) == 0)
			return 0;
		p += n;
	}
	if (*p != ' ' && *p != '\t' && *p != '\0')
		return 0;
	code = (size_t)(p - text);		/* at most 9: "5.999.999" */
	memcpy(out, text, code);
	out[code] = '\0';
	while (*p == ' ' || *p == '\t')
		p++;
	return (size_t)(p - text);
}

static int
smtp_ascii_upper(int ch)
{
	return ch >= 'a' && ch <= 'z' ? ch - 'a' + 'A' : ch;
}

/* Case-insensitive (ASCII, locale-free) equality of p[0..n) and the word w. */
static int
smtp_word_is(const char *p, size_t n, const char *w)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (w[i] == '\0' || smtp_ascii_upper((unsigned char)p[i]) != w[i])
			return 0;
	return w[n] == '\0';
}

static int
smtp_is_alnum(int ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* SIZE's parameter: 1*DIGIT that fits an unsigned long; 0 if malformed. */
static int
smtp_parse_size(const char *p, unsigned long *out)
{
	unsigned long v = 0;
	size_t i;

	for (i = 0; p[i] >= '0' && p[i] <= '9'; i++) {
		unsigned long d = (unsigned long)(p[i] - '0');

		if (v > (~0UL - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	if (i == 0 || (p[i] != '\0' && p[i] != ' '))
		return 0;
	*out = v;
	return 1;
}

/*
 * RFC 5321 4.1.1.1:
 *   ehlo-line    = ehlo-keyword *( SP ehlo-param )
 *   ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
 *   ehlo-param   = 1*(%d33-126)
 * Keywords are case-insensitive.  RFC 4954 4: AUTH's params are mechanism
 * names; old servers (and Exchange 2003) also send "AUTH=LOGIN PLAIN", so '='
 * right after AUTH counts as the separator.  RFC 1870: "SIZE" alone means no
 * limit is given.  Unknown keywords and malformed lines are ignored.
 */
void
o365_smtp_parse_ehlo_line(const char *text, struct o365_smtp_caps *caps)
{
	const char *p, *m;
	unsigned long size;
	size_t k, n;

	if (text == NULL || !smtp_is_alnum((unsigned char)text[0]))
		return;
	for (k = 1; smtp_is_alnum((unsigned char)text[k]) || text[k] == '-'; k++)
		;
	if (text[k] != '\0' && text[k] != ' ' &&
	    !(text[k] == '=' && smtp_word_is(text, k, "AUTH")))
		return;
	p = text + k;
	if (smtp_word_is(text, k, "AUTH")) {
		while (*p == ' ' || *p == '=') {
			m = ++p;
			while (*p != '\0' && *p != ' ')
				p++;
			n = (size_t)(p - m);
			if (smtp_word_is(m, n, "PLAIN"))
				caps->auth |= O365_SASL_PLAIN;
			else if (smtp_word_is(m, n, "LOGIN"))
				caps->auth |= O365_SASL_LOGIN;
			else if (smtp_word_is(m, n, "XOAUTH2"))
				caps->auth |= O365_SASL_XOAUTH2;
		}
	} else if (smtp_word_is(text, k, "SIZE")) {
		if (*p == '\0') {
			caps->size_given = 1;
			caps->size = 0;
		} else if (smtp_parse_size(p + 1, &size)) {
			caps->size_given = 1;
			caps->size = size;
		}
	} else if (smtp_word_is(text, k, "STARTTLS"))
		caps->starttls = 1;
	else if (smtp_word_is(text, k, "PIPELINING"))
		caps->pipelining = 1;
	else if (smtp_word_is(text, k, "8BITMIME"))
		caps->eightbitmime = 1;
	else if (smtp_word_is(text, k, "SMTPUTF8"))
		caps->smtputf8 = 1;
	else if (smtp_word_is(text, k, "ENHANCEDSTATUSCODES"))
		caps->enhanced = 1;
	else if (smtp_word_is(text, k, "DSN"))
		caps->dsn = 1;
	else if (smtp_word_is(text, k, "CHUNKING"))
		caps->chunking = 1;
}

/* ---- I/O ----------------------------------------------------------------- */

static int
smtp_tls_up(const struct o365_smtp *s)
{
	return s->assume_tls || o365_conn_is_tls(s->conn);
}

static int
smtp_usable(struct o365_smtp *s, struct o365_error *err)
{
	o365_error_clear(err);
	if (s == NULL)
		return o365_error_set(err, O365_E_INVAL, "no SMTP session");
	if (s->broken)
		return o365_error_set(err, O365_E_NET,
		    "the SMTP session is unusable after an earlier error");
	return O365_OK;
}

/* Send n bytes; trace is what the log shows instead (NULL: the line itself). */
static int
smtp_send(struct o365_smtp *s, const char *p, size_t n, const char *trace,
    const struct o365_deadline *dl, struct o365_error *err)
{
	int r;

	if (trace != NULL)
		o365_log_trace(s->lg, "C", trace, strlen(trace));
	else
		o365_log_trace(s->lg, "C", p, n >= 2 ? n - 2 : n);
	if ((r = o365_conn_write(s->conn, p, n, dl, err)) != O365_OK)
		s->broken = 1;
	return r;
}

/* Format one command line (with CRLF) and send it.  Never used for secrets. */
static int
smtp_cmd(struct o365_smtp *s, const struct o365_deadline *dl, struct o365_error *err,
    const char *fmt, ...) O365_PRINTF(4, 5);

static int
smtp_cmd(struct o365_smtp *s, const struct o365_deadline *dl, struct o365_error *err,
    const char *fmt, ...)
{
	char line[O365_MAX_ADDRESS + O365_MAX_HOSTNAME + 128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return o365_error_set(err, O365_E_TOOLONG, "SMTP command too long");
	return smtp_send(s, line, (size_t)n, NULL, dl, err);
}

/*
 * Read one whole reply (all its lines) into *rp and s->last.  caps, when not
 * NULL, gets every line after the first folded in (EHLO).  quiet hides the
 * text of 334 lines (SASL challenges) from traces and from rp->text.
 * Any failure here leaves the session unusable.
 */
static int
smtp_read_reply(struct o365_smtp *s, enum smtp_state st, int quiet,
    struct o365_smtp_caps *caps, struct o365_smtp_reply *rp,
    const struct o365_deadline *dl, struct o365_error *err)
{
	char join[1024], enh[12];
	const char *text;
	size_t len, tlen, jlen = 0, e, nline;
	int r, code, more, first = 0;
	char *line;

	memset(rp, 0, sizeof(*rp));
	for (nline = 0;; nline++) {
		if (nline == O365_MAX_SMTP_LINES) {
			r = o365_error_set(err, O365_E_TOOLONG,
			    "reply to %s has more than %d lines", smtp_state_names[st],
			    O365_MAX_SMTP_LINES);
			goto fail;
		}
		if ((r = o365_conn_getline(s->conn, O365_MAX_SMTP_LINE, &line, &len, dl,
		    err)) != O365_OK) {
			if (err != NULL) {	/* say what we were waiting for */
				char why[sizeof(err->why)];

				memcpy(why, err->why, sizeof(why));
				(void)o365_error_set(err, r, "%s (reply to %s)", why,
				    smtp_state_names[st]);
			}
			goto fail;
		}
		if (o365_smtp_parse_reply_line(line, len, &code, &more, &text) != O365_OK) {
			if (quiet)
				o365_log_trace(s->lg, "S", "<malformed AUTH reply>", 22);
			else
				o365_log_trace(s->lg, "S", line, len);
			r = quiet ? o365_error_set(err, O365_E_PROTO,
			    "malformed reply to %s", smtp_state_names[st]) :
			    o365_error_set(err, O365_E_PROTO, "malformed reply to %s: \"%.*s\"",
			    smtp_state_names[st], (int)(len > 80 ? 80 : len), line);
			goto fail;
		}
		if (quiet && code == 334) {
			o365_log_trace(s->lg, "S", "334 <secret>", 12);
		} else
			o365_log_trace(s->lg, "S", line, len);
		if (nline == 0)
			first = code;
		else if (code != first) {
			r = o365_error_set(err, O365_E_PROTO,
			    "reply to %s mixes codes %d and %d", smtp_state_names[st], first, code);
			goto fail;
		}
		if (caps != NULL && nline > 0)
			o365_smtp_parse_ehlo_line(text, caps);
		if (quiet && code == 334)
			goto next;
		/* an enhanced code whose class is not the reply's is just text */
		e = o365_smtp_parse_enhanced(text, enh);
		if (e > 0 && enh[0] == line[0]) {
			if (nline == 0)
				memcpy(rp->enhanced, enh, sizeof(rp->enhanced));
			text += e;
		}
		tlen = len - (size_t)(text - line);
		if (jlen > 0 && jlen + 3 < sizeof(join)) {
			memcpy(join + jlen, " / ", 3);
			jlen += 3;
		}
		if (tlen > sizeof(join) - jlen)
			tlen = sizeof(join) - jlen;
		memcpy(join + jlen, text, tlen);
		jlen += tlen;
next:
		if (!more)
			break;
	}
	rp->code = first;
	/* join holds up to 1024 raw bytes, text 511: a cut always shows "..." */
	o365_sanitize(rp->text, sizeof(rp->text), join, jlen);
	s->last = *rp;
	return O365_OK;
fail:
	s->broken = 1;
	return r;
}

/*
 * Map a reply to the result of command st: O365_OK when lo <= code <= hi.
 * 421 (RFC 5321 3.8: the server is closing) is TEMP and ends the session.
 */
static int
smtp_check(struct o365_smtp *s, enum smtp_state st, const struct o365_smtp_reply *rp,
    int lo, int hi, struct o365_error *err)
{
	const char *name = smtp_state_names[st];
	int r;

	if (rp->code >= lo && rp->code <= hi)
		return O365_OK;
	if (rp->code == 421) {
		s->broken = 1;
		r = o365_error_set(err, O365_E_TEMP,
		    "%s: %d %s%s%s (the server closed the session)", name, rp->code,
		    rp->enhanced, rp->enhanced[0] ? " " : "", rp->text);
	} else if (rp->code >= 400 && rp->code < 500)
		r = o365_error_set(err, O365_E_TEMP, "%s: %d %s%s%s", name, rp->code,
		    rp->enhanced, rp->enhanced[0] ? " " : "", rp->text);
	else if (st == SMTP_AUTH && (rp->code == 530 || rp->code == 534 ||
	    rp->code == 535 || rp->code == 538))
		r = o365_error_set(err, O365_E_AUTH, "%s: %d %s%s%s", name, rp->code,
		    rp->enhanced, rp->enhanced[0] ? " " : "", rp->text);
	else if (rp->code >= 500)
		r = o365_error_set(err, O365_E_PERM, "%s: %d %s%s%s", name, rp->code,
		    rp->enhanced, rp->enhanced[0] ? " " : "", rp->text);
	else {
		s->broken = 1;		/* out of step with the server */
		r = o365_error_set(err, O365_E_PROTO, "unexpected reply %d to %s: %s",
		    rp->code, name, rp->text);
	}
	if (err != NULL) {
		err->reply = rp->code;
		memcpy(err->enhanced, rp->enhanced, sizeof(err->enhanced));
	}
	return r;
}

/* Send a plain command, read its reply and map it. */
static int
smtp_simple(struct o365_smtp *s, enum smtp_state st, const char *cmd, int lo, int hi,
    const struct o365_deadline *dl, struct o365_error *err)
{
	struct o365_smtp_reply rp;
	int r;

	if ((r = smtp_send(s, cmd, strlen(cmd), NULL, dl, err)) != O365_OK ||
	    (r = smtp_read_reply(s, st, st == SMTP_AUTH, NULL, &rp, dl, err)) != O365_OK)
		return r;
	return smtp_check(s, st, &rp, lo, hi, err);
}

static void
smtp_log_caps(struct o365_smtp *s)
{
	const struct o365_smtp_caps *c = &s->caps;

	o365_log(s->lg, LOG_DEBUG,
	    "smtp capabilities:%s%s%s%s%s%s%s auth=%s%s%s size=%lu",
	    c->starttls ? " STARTTLS" : "", c->pipelining ? " PIPELINING" : "",
	    c->eightbitmime ? " 8BITMIME" : "", c->smtputf8 ? " SMTPUTF8" : "",
	    c->enhanced ? " ENHANCEDSTATUSCODES" : "", c->dsn ? " DSN" : "",
	    c->chunking ? " CHUNKING" : "",
	    c->auth & O365_SASL_PLAIN ? "PLAIN," : "", c->auth & O365_SASL_LOGIN ? "LOGIN," : "",
	    c->auth & O365_SASL_XOAUTH2 ? "XOAUTH2" : "", c->size);
}

/*
 * EHLO, replacing all capabilities.  RFC 5321 3.2: HELO only if EHLO gets 500
 * or 502 and TLS is already up (implicit TLS); on the plain connection we
 * need STARTTLS, which a server without EHLO cannot offer.
 */
static int
smtp_ehlo(struct o365_smtp *s, const struct o365_deadline *dl, struct o365_error *err)
{
	struct o365_smtp_caps caps;
	struct o365_smtp_reply rp;
	int r;

	memset(&s->caps, 0, sizeof(s->caps));
	memset(&caps, 0, sizeof(caps));
	if ((r = smtp_cmd(s, dl, err, "EHLO %s\r\n", s->helo)) != O365_OK ||
	    (r = smtp_read_reply(s, SMTP_EHLO, 0, &caps, &rp, dl, err)) != O365_OK)
		return r;
	if (rp.code == 250) {
		s->caps = caps;
		smtp_log_caps(s);
		return O365_OK;
	}
	if (rp.code != 500 && rp.code != 502)
		return smtp_check(s, SMTP_EHLO, &rp, 250, 250, err);
	if (!smtp_tls_up(s)) {
		r = o365_error_set(err, O365_E_TLS,
		    "server does not support EHLO (%d), so no STARTTLS", rp.code);
		if (err != NULL)
			err->reply = rp.code;
		return r;
	}
	if ((r = smtp_cmd(s, dl, err, "HELO %s\r\n", s->helo)) != O365_OK ||
	    (r = smtp_read_reply(s, SMTP_HELO, 0, NULL, &rp, dl, err)) != O365_OK)
		return r;
	return smtp_check(s, SMTP_HELO, &rp, 250, 250, err);
}

/* RFC 3207 4: STARTTLS, then the handshake, then EHLO from scratch. */
static int
smtp_starttls(struct o365_smtp *s, const struct o365_smtp_opts *o,
    const struct o365_deadline *dl, struct o365_error *err)
{
	int r;

	if (!s->caps.starttls)
		return o365_error_set(err, O365_E_TLS, "server does not offer STARTTLS");
	if ((r = smtp_simple(s, SMTP_STARTTLS, "STARTTLS\r\n", 220, 220, dl, err)) != O365_OK)
		return r;
	if (o365_conn_pending(s->conn) != 0) {
		/* bytes sent before the handshake would be read as if they came
		 * through TLS (CVE-2011-0411 class): conn_start_tls refuses as well */
		s->broken = 1;
		return o365_error_set(err, O365_E_PROTO,
		    "server sent data after its STARTTLS reply (plaintext injection)");
	}
	if ((r = o365_conn_start_tls(s->conn, o->tls, o->host, dl, s->lg, err)) != O365_OK) {
		s->broken = 1;
		return r;
	}
	o365_log(s->lg, LOG_DEBUG, "smtp: TLS is up; asking for capabilities again");
	return smtp_ehlo(s, dl, err);
}

/* Our EHLO name: a domain or an address literal, no blanks or controls. */
static int
smtp_check_helo(const char *h, struct o365_error *err)
{
	size_t i, n = strlen(h);

	if (n == 0 || n > O365_MAX_HOSTNAME)
		return o365_error_set(err, O365_E_INVAL, "bad EHLO name length");
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)h[i];

		if (!smtp_is_alnum(ch) && ch != '-' && ch != '.' && ch != '[' &&
		    ch != ']' && ch != ':' && ch != '_')
			return o365_error_set(err, O365_E_INVAL,
			    "EHLO name holds a character not allowed in a domain");
	}
	return O365_OK;
}

static void
smtp_free(struct o365_smtp **sp)
{
	struct o365_smtp *s = *sp;

	if (s == NULL)
		return;
	o365_conn_close(&s->conn);
	free(s);
	*sp = NULL;
}

int
smtp_open_conn(struct o365_conn *conn, const struct o365_smtp_opts *o, unsigned flags,
    const struct o365_deadline *dl, const struct o365_log *lg, struct o365_smtp **out,
    struct o365_error *err)
{
	struct o365_smtp_reply rp;
	struct o365_smtp *s = NULL;
	const char *helo;
	int r;

	*out = NULL;
	o365_error_clear(err);
	helo = o->helo != NULL ? o->helo : "localhost";
	if ((r = smtp_check_helo(helo, err)) != O365_OK)
		goto fail;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		r = o365_error_set(err, O365_E_NOMEM, "out of memory");
		goto fail;
	}
	s->conn = conn;
	conn = NULL;
	if (lg != NULL) {
		s->lgcopy = *lg;
		s->lg = &s->lgcopy;
	}
	memcpy(s->helo, helo, strlen(helo) + 1);
	s->assume_tls = (flags & SMTP_TEST_ASSUME_TLS) != 0;

	/* RFC 5321 3.1: a 554 (or 421) greeting; we still say QUIT politely */
	if ((r = smtp_read_reply(s, SMTP_GREETING, 0, NULL, &rp, dl, err)) != O365_OK ||
	    (r = smtp_check(s, SMTP_GREETING, &rp, 220, 220, err)) != O365_OK ||
	    (r = smtp_ehlo(s, dl, err)) != O365_OK)
		goto fail;
	if (!smtp_tls_up(s) && (r = smtp_starttls(s, o, dl, err)) != O365_OK)
		goto fail;
	*out = s;
	return O365_OK;
fail:
	o365_conn_close(&conn);
	if (s != NULL && !s->broken)
		(void)smtp_simple(s, SMTP_QUIT, "QUIT\r\n", 221, 221, dl, NULL);
	smtp_free(&s);
	return r;
}

int
o365_smtp_connect(const struct o365_smtp_opts *o, const struct o365_deadline *dl,
    const struct o365_log *lg, struct o365_smtp **out, struct o365_error *err)
{
	struct o365_conn *c = NULL;
	int r;

	*out = NULL;
	o365_error_clear(err);
	if (o == NULL || o->host == NULL)
		return o365_error_set(err, O365_E_INVAL, "no SMTP server given");
	if (o->tls_mode != O365_SMTP_STARTTLS && o->tls_mode != O365_SMTP_IMPLICIT)
		return o365_error_set(err, O365_E_INVAL, "bad SMTP TLS mode");
	if ((r = o365_conn_connect(o->host, o->port, dl, lg, &c, err)) != O365_OK)
		return r;
	if (o->tls_mode == O365_SMTP_IMPLICIT &&
	    (r = o365_conn_start_tls(c, o->tls, o->host, dl, lg, err)) != O365_OK) {
		o365_conn_close(&c);
		return r;
	}
	return smtp_open_conn(c, o, 0, dl, lg, out, err);
}

const struct o365_smtp_caps *
o365_smtp_caps(const struct o365_smtp *s)
{
	return &s->caps;
}

int
o365_smtp_usable(const struct o365_smtp *s)
{
	return s != NULL && !s->broken;
}

const struct o365_smtp_reply *
o365_smtp_last_reply(const struct o365_smtp *s)
{
	return &s->last;
}

struct o365_conn *
o365_smtp_conn(struct o365_smtp *s)
{
	return s->conn;
}

/* ---- AUTH (RFC 4954) ----------------------------------------------------- */

/* prefix + b64 + CRLF in a new secret (b64 is a secret already). */
static int
smtp_secret_line(const char *prefix, const struct o365_secret *b64, struct o365_secret **out,
    struct o365_error *err)
{
	struct o365_secret *line;
	size_t plen = strlen(prefix);

	*out = NULL;
	if ((line = calloc(1, sizeof(*line))) == NULL ||
	    (line->data = malloc(plen + b64->len + 3)) == NULL) {
		free(line);
		return o365_error_set(err, O365_E_NOMEM, "cannot build the AUTH message");
	}
	memcpy(line->data, prefix, plen);
	memcpy(line->data + plen, b64->data, b64->len);
	memcpy(line->data + plen + b64->len, "\r\n", 3);
	line->len = plen + b64->len + 2;
	*out = line;
	return O365_OK;
}

/* base64(p[0..n)) + CRLF in a new secret (a LOGIN answer). */
static int
smtp_b64_line(const char *p, size_t n, struct o365_secret **out, struct o365_error *err)
{
	struct o365_secret *b64 = NULL;
	int r;

	*out = NULL;
	if ((r = o365_base64_encode(p, n, &b64)) != O365_OK)
		return o365_error_set(err, r, "cannot build the AUTH message");
	r = smtp_secret_line("", b64, out, err);
	o365_secret_free(&b64);
	return r;
}

/*
 * The reply after our last SASL message.  A 334 here means the server wants
 * more: for XOAUTH2 it is a base64 JSON error, answered with an empty line
 * (Microsoft's and Google's documented way); otherwise RFC 4954 4's "*"
 * cancels.  Either way the final reply decides (535 -> AUTH, 501 -> PERM).
 */
static int
smtp_auth_final(struct o365_smtp *s, int mech, const struct o365_deadline *dl,
    struct o365_error *err)
{
	struct o365_smtp_reply rp;
	const char *more = mech == O365_SASL_XOAUTH2 ? "\r\n" : "*\r\n";
	int r;

	if ((r = smtp_read_reply(s, SMTP_AUTH, 1, NULL, &rp, dl, err)) != O365_OK)
		return r;
	if (rp.code == 334) {
		if ((r = smtp_send(s, more, strlen(more), NULL, dl, err)) != O365_OK ||
		    (r = smtp_read_reply(s, SMTP_AUTH, 1, NULL, &rp, dl, err)) != O365_OK)
			return r;
		if (rp.code == 235) {
			s->broken = 1;
			return o365_error_set(err, O365_E_PROTO,
			    "server accepted AUTH after asking for more");
		}
	}
	return smtp_check(s, SMTP_AUTH, &rp, 235, 235, err);
}

/* Send a secret line, then expect 334 (more == 1) or the final reply. */
static int
smtp_auth_step(struct o365_smtp *s, const struct o365_secret *line, const char *trace,
    const struct o365_deadline *dl, struct o365_error *err)
{
	struct o365_smtp_reply rp;
	int r;

	if ((r = smtp_send(s, line->data, line->len, trace, dl, err)) != O365_OK ||
	    (r = smtp_read_reply(s, SMTP_AUTH, 1, NULL, &rp, dl, err)) != O365_OK)
		return r;
	return smtp_check(s, SMTP_AUTH, &rp, 334, 334, err);
}

int
o365_smtp_auth(struct o365_smtp *s, int mech, const char *user, const char *secret,
    size_t secretlen, const struct o365_deadline *dl, struct o365_error *err)
{
	struct o365_secret *b64 = NULL, *line = NULL;
	size_t ulen;
	int r;

	if ((r = smtp_usable(s, err)) != O365_OK)
		return r;
	if (mech != O365_SASL_PLAIN && mech != O365_SASL_LOGIN && mech != O365_SASL_XOAUTH2)
		return o365_error_set(err, O365_E_INVAL, "unknown SASL mechanism %d", mech);
	if (!smtp_tls_up(s))		/* o365_smtp_connect never gets here without it */
		return o365_error_set(err, O365_E_TLS, "refusing AUTH without TLS");
	if ((s->caps.auth & (unsigned)mech) == 0)
		return o365_error_set(err, O365_E_CONFIG, "server does not offer AUTH %s",
		    o365_sasl_mech_name(mech));
	/* sasl.c checks PLAIN's and XOAUTH2's input; LOGIN gets the same rules */
	ulen = user != NULL ? strlen(user) : 0;
	if ((r = o365_credential_check(user, ulen, "user name", err)) != O365_OK)
		return r;
	for (size_t i = 0; i < ulen; i++)
		if ((unsigned char)user[i] < 0x20 || (unsigned char)user[i] == 0x7f)
			return o365_error_set(err, O365_E_INVAL,
			    "user name with a control character refused");

	switch (mech) {
	case O365_SASL_PLAIN:
		/* RFC 4616, sent as the initial response (RFC 4954 4) when the
		 * line fits the usual 1000 bytes, else after a 334 */
		if ((r = o365_sasl_plain(user, secret, secretlen, &b64, err)) != O365_OK)
			goto out;
		if (11 + b64->len + 2 <= O365_MAX_SMTP_LINE) {
			if ((r = smtp_secret_line("AUTH PLAIN ", b64, &line, err)) != O365_OK ||
			    (r = smtp_send(s, line->data, line->len, "AUTH PLAIN <secret>", dl,
			    err)) != O365_OK)
				break;
		} else if ((r = smtp_secret_line("", b64, &line, err)) != O365_OK ||
		    (r = smtp_simple(s, SMTP_AUTH, "AUTH PLAIN\r\n", 334, 334, dl, err)) != O365_OK ||
		    (r = smtp_send(s, line->data, line->len, "<secret>", dl, err)) != O365_OK)
			break;
		r = smtp_auth_final(s, mech, dl, err);
		break;
	case O365_SASL_LOGIN:
		/* draft-murchison-sasl-login: 334 "Username:", 334 "Password:" */
		if ((r = o365_credential_check(secret, secretlen, "password", err)) != O365_OK)
			goto out;
		if ((r = smtp_simple(s, SMTP_AUTH, "AUTH LOGIN\r\n", 334, 334, dl, err)) != O365_OK ||
		    (r = smtp_b64_line(user, ulen, &line, err)) != O365_OK ||
		    (r = smtp_auth_step(s, line, "<secret>", dl, err)) != O365_OK)
			break;
		o365_secret_free(&line);
		if ((r = smtp_b64_line(secret, secretlen, &line, err)) != O365_OK ||
		    (r = smtp_send(s, line->data, line->len, "<secret>", dl, err)) != O365_OK)
			break;
		r = smtp_auth_final(s, mech, dl, err);
		break;
	case O365_SASL_XOAUTH2:
		/* Exchange Online wants "AUTH XOAUTH2", then the blob after 334
		 * (blobs pass 2 KB; RFC 4954 would allow a 12288-byte SASL-IR
		 * line, but the 334 way works everywhere) */
		if ((r = o365_sasl_xoauth2(user, secret, secretlen, &b64, err)) != O365_OK)
			goto out;
		if ((r = smtp_secret_line("", b64, &line, err)) != O365_OK ||
		    (r = smtp_simple(s, SMTP_AUTH, "AUTH XOAUTH2\r\n", 334, 334, dl, err)) != O365_OK ||
		    (r = smtp_send(s, line->data, line->len, "<secret>", dl, err)) != O365_OK)
			break;
		r = smtp_auth_final(s, mech, dl, err);
		break;
	default:
		r = O365_E_PROTO;
		break;
	}
out:
	o365_secret_free(&b64);
	o365_secret_free(&line);
	if (r == O365_OK)
		o365_log(s->lg, LOG_DEBUG, "smtp: authenticated");
	return r;
}

/* ---- envelope ------------------------------------------------------------ */

/*
 * What we put between < and > (RFC 5321 4.1.2 Path): at most
 * O365_MAX_ADDRESS bytes, no control bytes, no '<' or '>', blanks only inside
 * a quoted local part ("john doe"@example.com).  empty_ok for the null
 * reverse-path <> of bounces.
 */
static int
smtp_check_address(const char *a, int empty_ok, const char *what, struct o365_error *err)
{
	size_t i, n;
	int quoted = 0;

	if (a == NULL)
		return o365_error_set(err, O365_E_INVAL, "no %s address", what);
	n = strlen(a);
	if (n == 0 && !empty_ok)
		return o365_error_set(err, O365_E_INVAL, "empty %s address", what);
	if (n > O365_MAX_ADDRESS)
		return o365_error_set(err, O365_E_INVAL, "%s address longer than %d bytes",
		    what, O365_MAX_ADDRESS);
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)a[i];

		if (ch < 0x20 || ch == 0x7f || ch == '<' || ch == '>')
			return o365_error_set(err, O365_E_INVAL,
			    "%s address holds a control character, '<' or '>'", what);
		if (ch == ' ' && !quoted)
			return o365_error_set(err, O365_E_INVAL,
			    "%s address holds a space outside quotes", what);
		if (ch == '"')
			quoted = !quoted;
		else if (ch == '\\' && quoted) {
			if (i + 1 == n)
				break;
			i++;		/* quoted-pair: the escaped byte */
			ch = (unsigned char)a[i];
			if (ch < 0x20 || ch == 0x7f || ch == '<' || ch == '>')
				return o365_error_set(err, O365_E_INVAL,
				    "%s address holds a control character, '<' or '>'", what);
		}
	}
	if (quoted)
		return o365_error_set(err, O365_E_INVAL, "%s address has an unclosed quote", what);
	return O365_OK;
}

static int
smtp_mail_line(const struct o365_smtp *s, const char *from, off_t size, unsigned flags,
    char *line, size_t linesz)
{
	char sz[40] = "";
	int n;

	if (s->caps.size_given && size > 0)
		snprintf(sz, sizeof(sz), " SIZE=%lld", (long long)size);
	n = snprintf(line, linesz, "MAIL FROM:<%s>%s%s%s\r\n", from, sz,
	    (flags & O365_SMTP_8BIT) && s->caps.eightbitmime ? " BODY=8BITMIME" : "",
	    (flags & O365_SMTP_UTF8) && s->caps.smtputf8 ? " SMTPUTF8" : "");
	return n < 0 || (size_t)n >= linesz ? -1 : n;
}

/* Rank of a failed RCPT for "first worst": PERM over TEMP. */
static int
smtp_rank(int r)
{
	return r == O365_E_PERM ? 2 : r == O365_E_TEMP ? 1 : 0;
}

int
o365_smtp_envelope(struct o365_smtp *s, const char *from, off_t size, unsigned flags,
    const char *const *rcpts, size_t nrcpt, int *rcpt_codes,
    struct o365_smtp_reply *rcpt_replies, const struct o365_deadline *dl,
    struct o365_error *err)
{
	char line[O365_MAX_ADDRESS + 128];
	struct o365_error worst_err, one;
	struct o365_smtp_reply rp;
	struct o365_buf batch;
	size_t i, nok = 0;
	int r, n, worst = 0, pipelined;

	o365_buf_init(&batch, 0);
	if ((r = smtp_usable(s, err)) != O365_OK)
		return r;
	if (rcpts == NULL || nrcpt == 0 || rcpt_codes == NULL)
		return o365_error_set(err, O365_E_INVAL, "no recipients");
	if ((r = smtp_check_address(from, 1, "sender", err)) != O365_OK)
		return r;
	for (i = 0; i < nrcpt; i++) {
		rcpt_codes[i] = 0;
		if (rcpt_replies != NULL)
			memset(&rcpt_replies[i], 0, sizeof(rcpt_replies[i]));
		if ((r = smtp_check_address(rcpts[i], 0, "recipient", err)) != O365_OK)
			return r;
	}
	if ((n = smtp_mail_line(s, from, size, flags, line, sizeof(line))) < 0)
		return o365_error_set(err, O365_E_TOOLONG, "MAIL FROM line too long");

	pipelined = s->caps.pipelining;
	if ((flags & O365_SMTP_RSET) && !pipelined &&
	    (r = smtp_simple(s, SMTP_RSET, "RSET\r\n", 250, 250, dl, err)) != O365_OK)
		return r;
	if (pipelined) {
		/* RFC 2920 3.1: [RSET,] MAIL and every RCPT in one write, replies
		 * in order */
		o365_buf_init(&batch, (nrcpt + 2) * sizeof(line));
		if (flags & O365_SMTP_RSET) {
			if ((r = o365_buf_append(&batch, "RSET\r\n", 6)) != O365_OK)
				goto nomem;
			o365_log_trace(s->lg, "C", "RSET", 4);
		}
		if ((r = o365_buf_append(&batch, line, (size_t)n)) != O365_OK)
			goto nomem;
		o365_log_trace(s->lg, "C", line, (size_t)n - 2);
		for (i = 0; i < nrcpt; i++) {
			n = snprintf(line, sizeof(line), "RCPT TO:<%s>\r\n", rcpts[i]);
			if (n < 0 || (size_t)n >= sizeof(line) ||
			    (r = o365_buf_append(&batch, line, (size_t)n)) != O365_OK)
				goto nomem;
			o365_log_trace(s->lg, "C", line, (size_t)n - 2);
		}
		if ((r = o365_conn_write(s->conn, batch.data, batch.len, dl, err)) != O365_OK) {
			s->broken = 1;
			goto out;
		}
	} else if ((r = smtp_send(s, line, (size_t)n, NULL, dl, err)) != O365_OK)
		goto out;

	if (pipelined && (flags & O365_SMTP_RSET) &&
	    ((r = smtp_read_reply(s, SMTP_RSET, 0, NULL, &rp, dl, err)) != O365_OK ||
	    (r = smtp_check(s, SMTP_RSET, &rp, 250, 250, err)) != O365_OK)) {
		s->broken = 1;		/* MAIL's and RCPT's replies are unread */
		goto out;
	}
	if ((r = smtp_read_reply(s, SMTP_MAIL, 0, NULL, &rp, dl, err)) != O365_OK)
		goto out;
	if ((r = smtp_check(s, SMTP_MAIL, &rp, 250, 250, err)) != O365_OK) {
		/* pipelined RCPTs still get their (503) replies: read them to keep
		 * in step, but report the MAIL failure */
		for (i = 0; pipelined && !s->broken && i < nrcpt; i++) {
			if (smtp_read_reply(s, SMTP_RCPT, 0, NULL, &rp, dl, &one) != O365_OK)
				break;
			rcpt_codes[i] = rp.code;
			if (rcpt_replies != NULL)
				rcpt_replies[i] = rp;
		}
		goto out;
	}

	o365_error_clear(&worst_err);
	for (i = 0; i < nrcpt; i++) {
		if (!pipelined &&
		    (r = smtp_cmd(s, dl, err, "RCPT TO:<%s>\r\n", rcpts[i])) != O365_OK)
			goto out;
		if ((r = smtp_read_reply(s, SMTP_RCPT, 0, NULL, &rp, dl, err)) != O365_OK)
			goto out;
		rcpt_codes[i] = rp.code;
		if (rcpt_replies != NULL)
			rcpt_replies[i] = rp;
		o365_error_clear(&one);
		r = smtp_check(s, SMTP_RCPT, &rp, 250, 251, &one);
		if (r == O365_OK) {
			nok++;
			continue;
		}
		if (s->broken) {	/* 421 or out of step: nothing more to read */
			if (err != NULL)
				*err = one;
			goto out;
		}
		if (smtp_rank(r) > worst) {
			worst = smtp_rank(r);
			worst_err = one;
		}
	}
	if (nok > 0) {
		o365_error_clear(err);
		r = O365_OK;
	} else {
		r = worst_err.code != O365_OK ? worst_err.code : O365_E_PROTO;
		if (err != NULL)
			*err = worst_err;
	}
	goto out;
nomem:
	r = o365_error_set(err, r == O365_E_NOMEM ? O365_E_NOMEM : O365_E_TOOLONG,
	    "cannot build the envelope commands");
out:
	o365_buf_free(&batch);
	return r;
}

/* ---- DATA ---------------------------------------------------------------- */

struct smtp_dot {
	unsigned char	*out;
	size_t		 len;
	int		 bol;		/* at the start of a line */
	int		 cr;		/* a CR is pending */
};

static int
smtp_flush(struct o365_smtp *s, struct smtp_dot *d, const struct o365_deadline *dl,
    struct o365_error *err)
{
	int r;

	if (d->len == 0)
		return O365_OK;
	if ((r = o365_conn_write(s->conn, d->out, d->len, dl, err)) != O365_OK)
		return r;
	d->len = 0;
	return O365_OK;
}

/*
 * RFC 5321 4.5.2 and 2.3.8: every line ends in CRLF and a line starting with
 * '.' gets one more.  Bare LF becomes CRLF; a bare CR (one not followed by LF)
 * becomes CRLF too: RFC 5321 allows CR only in CRLF, and lone CRs are what
 * "SMTP smuggling" payloads (<CR>.<CR>) rely on, so none leaves us.  Long
 * lines are passed through unchanged (folding would alter the message).
 */
static int
smtp_dot_feed(struct o365_smtp *s, struct smtp_dot *d, const unsigned char *in, size_t n,
    const struct o365_deadline *dl, struct o365_error *err)
{
	size_t i;
	int r;

	for (i = 0; i < n; i++) {
		unsigned char ch = in[i];

		if (d->len + 4 > SMTP_CHUNK && (r = smtp_flush(s, d, dl, err)) != O365_OK)
			return r;
		if (d->cr) {
			d->cr = 0;
			d->out[d->len++] = '\r';
			d->out[d->len++] = '\n';
			d->bol = 1;
			if (ch == '\n')
				continue;
		}
		if (ch == '\r') {
			d->cr = 1;
			continue;
		}
		if (ch == '\n') {
			d->out[d->len++] = '\r';
			d->out[d->len++] = '\n';
			d->bol = 1;
			continue;
		}
		if (d->bol && ch == '.')
			d->out[d->len++] = '.';
		d->out[d->len++] = ch;
		d->bol = 0;
	}
	return O365_OK;
}

static int
smtp_stream(struct o365_smtp *s, int fd, const struct o365_deadline *dl,
    struct o365_error *err)
{
	struct smtp_dot d = { NULL, 0, 1, 0 };
	unsigned char *in = NULL;
	ssize_t n;
	int r;

	if ((in = malloc(SMTP_CHUNK)) == NULL || (d.out = malloc(SMTP_CHUNK)) == NULL) {
		r = o365_error_set(err, O365_E_NOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		n = read(fd, in, SMTP_CHUNK);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			r = o365_error_set(err, O365_E_IO, "reading the message: %s",
			    strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if ((r = smtp_dot_feed(s, &d, in, (size_t)n, dl, err)) != O365_OK)
			goto out;
	}
	if (d.len + 7 > SMTP_CHUNK && (r = smtp_flush(s, &d, dl, err)) != O365_OK)
		goto out;
	if (d.cr || !d.bol) {
		d.out[d.len++] = '\r';
		d.out[d.len++] = '\n';
	}
	memcpy(d.out + d.len, ".\r\n", 3);
	d.len += 3;
	o365_log_trace(s->lg, "C", "<message>", 9);
	o365_log_trace(s->lg, "C", ".", 1);
	r = smtp_flush(s, &d, dl, err);
out:
	free(in);
	free(d.out);
	return r;
}

int
o365_smtp_data_fd(struct o365_smtp *s, int fd, const struct o365_deadline *dl,
    struct o365_error *err)
{
	struct o365_smtp_reply rp;
	int r;

	if ((r = smtp_usable(s, err)) != O365_OK)
		return r;
	if (fd < 0)
		return o365_error_set(err, O365_E_INVAL, "no message file");
	if ((r = smtp_simple(s, SMTP_DATA, "DATA\r\n", 354, 354, dl, err)) != O365_OK)
		return r;
	if ((r = smtp_stream(s, fd, dl, err)) != O365_OK) {
		/* never end a partial message with "."; closing makes the server
		 * drop it */
		s->broken = 1;
		return r;
	}
	if ((r = smtp_read_reply(s, SMTP_DOT, 0, NULL, &rp, dl, err)) != O365_OK)
		return r;
	return smtp_check(s, SMTP_DOT, &rp, 250, 250, err);
}

int
o365_smtp_rset(struct o365_smtp *s, const struct o365_deadline *dl, struct o365_error *err)
{
	int r;

	if ((r = smtp_usable(s, err)) != O365_OK)
		return r;
	return smtp_simple(s, SMTP_RSET, "RSET\r\n", 250, 250, dl, err);
}

int
o365_smtp_noop(struct o365_smtp *s, const struct o365_deadline *dl, struct o365_error *err)
{
	int r;

	if ((r = smtp_usable(s, err)) != O365_OK)
		return r;
	return smtp_simple(s, SMTP_NOOP, "NOOP\r\n", 250, 250, dl, err);
}

void
o365_smtp_quit(struct o365_smtp **sp, const struct o365_deadline *dl)
{
	struct o365_smtp *s;

	if (sp == NULL || (s = *sp) == NULL)
		return;
	if (!s->broken)
		(void)smtp_simple(s, SMTP_QUIT, "QUIT\r\n", 221, 221, dl, NULL);
	smtp_free(sp);
}
