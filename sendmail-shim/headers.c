/*
 * headers.c: the RFC 5322 header block of a submitted message.
 *
 * Only the header block is held in memory (capped at SM_MAX_HEADERS); the
 * body is streamed.  Fields are kept as raw text, folded lines and line ends
 * included, so what we do not touch goes out byte for byte.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sm.h"

/* ---- address lists ---- */

void
sm_addrs_free(struct sm_addrs *a)
{
	free(a->v);
	memset(a, 0, sizeof(*a));
}

int
sm_addrs_add(struct sm_addrs *a, const char *addr, const char *name)
{
	struct sm_addr *nv;
	const unsigned char *c;
	size_t len = strlen(addr);

	if (len == 0)
		return O365_OK;
	if (len > O365_MAX_ADDRESS)
		return O365_E_TOOLONG;
	for (c = (const unsigned char *)addr; *c != '\0'; c++)
		if (*c <= 0x20 || *c == 0x7f || *c == '<' || *c == '>')
			return O365_E_INVAL;
	if (a->n == a->cap) {
		if (a->cap >= SM_MAX_RCPTS)
			return O365_E_TOOLONG;
		nv = realloc(a->v, (a->cap ? a->cap * 2 : 8) * sizeof(*nv));
		if (nv == NULL)
			return O365_E_NOMEM;
		a->v = nv;
		a->cap = a->cap ? a->cap * 2 : 8;
	}
	memset(&a->v[a->n], 0, sizeof(a->v[a->n]));
	memcpy(a->v[a->n].addr, addr, len + 1);
	if (name != NULL)
		snprintf(a->v[a->n].name, sizeof(a->v[a->n].name), "%s", name);
	a->n++;
	return O365_OK;
}

struct sbuf {
	char	s[1024];
	size_t	n;
	int	over;
};

static void
sb_put(struct sbuf *b, char c)
{
	if (b->n + 1 < sizeof(b->s))
		b->s[b->n++] = c;
	else
		b->over = 1;
	b->s[b->n] = '\0';
}

static void
sb_trim(struct sbuf *b)
{
	size_t i = 0;

	while (b->n > 0 && (b->s[b->n - 1] == ' ' || b->s[b->n - 1] == '\t'))
		b->n--;
	b->s[b->n] = '\0';
	while (b->s[i] == ' ' || b->s[i] == '\t')
		i++;
	memmove(b->s, b->s + i, b->n - i + 1);
	b->n -= i;
}

struct addr_el {
	struct sbuf	phrase, bare, angle, comment;
	int		has_angle;
};

static int
addr_emit(struct sm_addrs *a, struct addr_el *e)
{
	const char *addr, *name;
	char *colon;
	int r;

	sb_trim(&e->phrase);
	sb_trim(&e->comment);
	if (e->has_angle) {
		addr = e->angle.s;
		/* obs-route: <@a,@b:user@c> */
		if (addr[0] == '@' && (colon = strchr(e->angle.s, ':')) != NULL)
			addr = colon + 1;
		name = e->phrase.n > 0 ? e->phrase.s : e->comment.s;
		if (e->angle.over)
			return O365_E_TOOLONG;
	} else {
		addr = e->bare.s;
		name = e->comment.s;
		if (e->bare.over)
			return O365_E_TOOLONG;
	}
	r = sm_addrs_add(a, addr, name);
	memset(e, 0, sizeof(*e));
	return r;
}

/*
 * address-list (RFC 5322 3.4): mailbox / group, separated by ','.
 *   mailbox = name-addr / addr-spec;  name-addr = [display-name] "<" addr-spec ">"
 *   group = display-name ":" [group-list] ";"
 * plus CFWS anywhere: comments "(...)" nest, quoted strings take '\' escapes.
 */
int
sm_addrs_parse(struct sm_addrs *a, const char *s, size_t n)
{
	struct addr_el *e;
	size_t i;
	int depth = 0, inq = 0, inangle = 0, r = O365_OK;
	char c;

	if ((e = calloc(1, sizeof(*e))) == NULL)
		return O365_E_NOMEM;
	for (i = 0; i < n && r == O365_OK; i++) {
		c = s[i];
		if (c == '\r' || c == '\n')
			c = ' ';
		if (depth > 0) {			/* in a comment */
			if (c == '\\' && i + 1 < n)
				c = s[++i];
			else if (c == '(')
				depth++;
			else if (c == ')' && --depth == 0)
				continue;
			if (depth == 1 && !inangle)
				sb_put(&e->comment, c);
			continue;
		}
		if (inq) {				/* in a quoted string */
			if (c == '\\' && i + 1 < n) {
				c = s[++i];
				sb_put(inangle ? &e->angle : &e->bare, '\\');
			} else if (c == '"') {
				inq = 0;
				sb_put(inangle ? &e->angle : &e->bare, '"');
				continue;
			}
			sb_put(inangle ? &e->angle : &e->bare, c);
			if (!inangle)
				sb_put(&e->phrase, c);
			continue;
		}
		switch (c) {
		case '(':
			depth = 1;
			if (e->comment.n > 0)
				sb_put(&e->comment, ' ');
			continue;
		case '"':
			inq = 1;
			sb_put(inangle ? &e->angle : &e->bare, '"');
			continue;
		case '<':
			if (!inangle) {
				inangle = 1;
				e->has_angle = 1;
				e->angle.n = 0;
				e->angle.s[0] = '\0';
				continue;
			}
			break;
		case '>':
			if (inangle) {
				inangle = 0;
				continue;
			}
			break;
		case ':':
			if (!inangle && !e->has_angle) {	/* a group's display name */
				memset(e, 0, sizeof(*e));
				continue;
			}
			break;
		case ',':
		case ';':
			if (!inangle) {
				r = addr_emit(a, e);
				continue;
			}
			break;
		case ' ':
		case '\t':
			if (!inangle)
				sb_put(&e->phrase, ' ');
			continue;
		default:
			break;
		}
		sb_put(inangle ? &e->angle : &e->bare, c);
		if (!inangle)
			sb_put(&e->phrase, c);
	}
	if (r == O365_OK)
		r = addr_emit(a, e);
	free(e);
	return r;
}

/* ---- header block ---- */

void
sm_hdrs_free(struct sm_hdrs *h)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		free(h->v[i].text);
	free(h->v);
	free(h->body_first);
	memset(h, 0, sizeof(*h));
}

static int
hdrs_push(struct sm_hdrs *h, int front, const char *text, size_t len, size_t namelen)
{
	struct sm_hdr *nv;

	if (h->total + len > SM_MAX_HEADERS)
		return O365_E_TOOLONG;
	if (h->n == h->cap) {
		nv = realloc(h->v, (h->cap ? h->cap * 2 : 32) * sizeof(*nv));
		if (nv == NULL)
			return O365_E_NOMEM;
		h->v = nv;
		h->cap = h->cap ? h->cap * 2 : 32;
	}
	if (front)
		memmove(h->v + 1, h->v, h->n * sizeof(*h->v));
	nv = &h->v[front ? 0 : h->n];
	memset(nv, 0, sizeof(*nv));
	if ((nv->text = malloc(len + 1)) == NULL) {
		if (front)
			memmove(h->v, h->v + 1, h->n * sizeof(*h->v));
		return O365_E_NOMEM;
	}
	memcpy(nv->text, text, len);
	nv->text[len] = '\0';
	nv->len = len;
	nv->namelen = namelen;
	h->n++;
	h->total += len;
	return O365_OK;
}

static int
hdrs_append_last(struct sm_hdrs *h, const char *text, size_t len)
{
	struct sm_hdr *f = &h->v[h->n - 1];
	char *nt;

	if (h->total + len > SM_MAX_HEADERS)
		return O365_E_TOOLONG;
	if ((nt = realloc(f->text, f->len + len + 1)) == NULL)
		return O365_E_NOMEM;
	memcpy(nt + f->len, text, len);
	f->text = nt;
	f->len += len;
	f->text[f->len] = '\0';
	h->total += len;
	return O365_OK;
}

/* field-name = 1*ftext (printable except ':'), then ':' (obs: WSP before it). */
static size_t
hdr_namelen(const char *p, size_t len)
{
	size_t i = 0, n;

	while (i < len && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7f && p[i] != ':')
		i++;
	if (i == 0)
		return 0;
	n = i;
	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return i < len && p[i] == ':' ? n : 0;
}

/* Classify one physical line; 1: more header lines may follow, 0: done. */
static int
hdrs_line(struct sm_hdrs *h, const char *p, size_t len, int first, int *r)
{
	size_t nl;

	*r = O365_OK;
	if ((len == 1 && p[0] == '\n') || (len == 2 && p[0] == '\r' && p[1] == '\n')) {
		h->body_sep = 1;
		return 0;
	}
	if ((p[0] == ' ' || p[0] == '\t') && h->n > 0) {
		*r = hdrs_append_last(h, p, len);
	} else if (first && len >= 5 && memcmp(p, "From ", 5) == 0) {
		;	/* an mbox separator line, not a header */
	} else if ((nl = hdr_namelen(p, len)) > 0) {
		*r = hdrs_push(h, 0, p, len, nl);
	} else {
		/* not a header: the body starts here (no blank line) */
		if ((h->body_first = malloc(len)) == NULL) {
			*r = O365_E_NOMEM;
			return 0;
		}
		memcpy(h->body_first, p, len);
		h->body_first_len = len;
		return 0;
	}
	return *r == O365_OK;
}

int
sm_hdrs_read(struct sm_in *in, struct sm_hdrs *h)
{
	const char *p;
	char *line = NULL, *nb;
	size_t len, ll = 0, cap = 0;
	int bol, r, first = 1, more;

	memset(h, 0, sizeof(*h));
	for (;;) {
		r = sm_in_piece(in, SM_MAX_HEADER_LINE, &p, &len, &bol);
		if (r < 0)
			goto out;
		if (r == 0 && ll == 0)
			goto out;	/* EOF (no body) */
		if (r == 1) {
			if (ll + len > SM_MAX_HEADER_LINE) {
				/* a physical line longer than the cap: refused inside
				 * the header block, streamed when it starts the body */
				if (hdr_namelen(line, ll) > 0 || ((line[0] == ' ' || line[0] == '\t') && h->n > 0)) {
					r = O365_E_TOOLONG;
					goto out;
				}
				if ((nb = realloc(line, ll + len)) == NULL) {
					r = O365_E_NOMEM;
					goto out;
				}
				memcpy(nb + ll, p, len);
				h->body_first = nb;
				h->body_first_len = ll + len;
				line = NULL;
				r = O365_OK;
				goto out;
			}
			if (ll + len > cap) {
				cap = (ll + len) * 2 > SM_MAX_HEADER_LINE ? SM_MAX_HEADER_LINE : (ll + len) * 2;
				if ((nb = realloc(line, cap)) == NULL) {
					r = O365_E_NOMEM;
					goto out;
				}
				line = nb;
			}
			memcpy(line + ll, p, len);
			ll += len;
			if (line[ll - 1] != '\n' && !in->eof)
				continue;	/* the rest of this line */
		}
		more = hdrs_line(h, line, ll, first, &r);
		if (r != O365_OK || !more)
			goto out;
		first = 0;
		ll = 0;
		if (in->eof)
			goto out;
	}
out:
	free(line);
	(void)bol;
	return r < 0 ? r : O365_OK;
}

char *
sm_hdr_value(const struct sm_hdr *f)
{
	const char *p = f->text + f->namelen;
	char *v, *w;

	while (*p != ':')
		p++;
	p++;
	if ((v = malloc(strlen(p) + 1)) == NULL)
		return NULL;
	/* unfold (RFC 5322 2.2.3): drop CR and LF; the WSP after them stays */
	for (w = v; *p != '\0'; p++)
		if (*p != '\r' && *p != '\n')
			*w++ = *p;
	*w = '\0';
	while (w > v && (w[-1] == ' ' || w[-1] == '\t'))
		*--w = '\0';
	for (w = v; *w == ' ' || *w == '\t'; w++)
		;
	memmove(v, w, strlen(w) + 1);
	return v;
}

long
sm_hdrs_find(const struct sm_hdrs *h, const char *name, size_t from)
{
	size_t i, nl = strlen(name);

	for (i = from; i < h->n; i++)
		if (!h->v[i].drop && h->v[i].namelen == nl && strncasecmp(h->v[i].text, name, nl) == 0)
			return (long)i;
	return -1;
}

int
sm_hdrs_add(struct sm_hdrs *h, int front, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n;
	size_t nl;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 1)
		return O365_E_TOOLONG;
	line[n++] = '\n';
	line[n] = '\0';
	if ((nl = hdr_namelen(line, (size_t)n)) == 0)
		return O365_E_INVAL;
	return hdrs_push(h, front, line, (size_t)n, nl);
}

static int
hdr_is(const struct sm_hdr *f, const char *name)
{
	size_t nl = strlen(name);

	return f->namelen == nl && strncasecmp(f->text, name, nl) == 0;
}

static int
hdrs_collect(const struct sm_hdrs *h, size_t from, size_t to, const char *const *names,
    struct sm_addrs *rc)
{
	size_t i, k;
	char *v;
	int r;

	for (i = from; i < to; i++) {
		for (k = 0; names[k] != NULL; k++) {
			if (!hdr_is(&h->v[i], names[k]))
				continue;
			if ((v = sm_hdr_value(&h->v[i])) == NULL)
				return O365_E_NOMEM;
			r = sm_addrs_parse(rc, v, strlen(v));
			free(v);
			if (r != O365_OK)
				return r;
		}
	}
	return O365_OK;
}

int
sm_hdrs_recipients(const struct sm_hdrs *h, struct sm_addrs *rc)
{
	static const char *const plain[] = { "To", "Cc", "Bcc", NULL };
	static const char *const resent[] = { "Resent-To", "Resent-Cc", "Resent-Bcc", NULL };
	size_t i, k, start, end;

	/* RFC 5322 3.6.6: Resent-* blocks are prepended; the first (topmost)
	 * block is the latest resend and names its recipients */
	for (i = 0; i < h->n; i++)
		if (h->v[i].namelen > 7 && strncasecmp(h->v[i].text, "Resent-", 7) == 0)
			break;
	if (i < h->n) {
		start = i;
		/* the block ends at a non-Resent field or where a field repeats
		 * (each block has its own Resent-Date, Resent-From, ...) */
		for (end = start; end < h->n; end++) {
			if (!(h->v[end].namelen > 7 && strncasecmp(h->v[end].text, "Resent-", 7) == 0))
				break;
			for (k = start; k < end; k++)
				if (h->v[k].namelen == h->v[end].namelen &&
				    strncasecmp(h->v[k].text, h->v[end].text, h->v[end].namelen) == 0)
					break;
			if (k < end)
				break;
		}
		for (i = start; i < end; i++)
			if (hdr_is(&h->v[i], "Resent-To") || hdr_is(&h->v[i], "Resent-Cc") ||
			    hdr_is(&h->v[i], "Resent-Bcc"))
				return hdrs_collect(h, start, end, resent, rc);
	}
	return hdrs_collect(h, 0, h->n, plain, rc);
}

void
sm_hdrs_drop_bcc(struct sm_hdrs *h)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		if (hdr_is(&h->v[i], "Bcc") || hdr_is(&h->v[i], "Resent-Bcc"))
			h->v[i].drop = 1;
}

int
sm_rfc5322_date(time_t t, char *buf, size_t size)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL)
		return -1;
	/* the C locale: this program never calls setlocale() */
	return strftime(buf, size, "%a, %d %b %Y %H:%M:%S %z", &tm) > 0 ? 0 : -1;
}

/* A display name as a quoted-string, control characters dropped. */
static void
quote_name(char *dst, size_t size, const char *name)
{
	size_t o = 0;

	if (size < 3) {
		if (size > 0)
			dst[0] = '\0';
		return;
	}
	dst[o++] = '"';
	for (; *name != '\0' && o + 3 < size; name++) {
		if ((unsigned char)*name < 0x20 || *name == 0x7f)
			continue;
		if (*name == '"' || *name == '\\')
			dst[o++] = '\\';
		dst[o++] = *name;
	}
	dst[o++] = '"';
	dst[o] = '\0';
}

int
sm_hdrs_complete(struct sm_hdrs *h, const struct sm_ident *id)
{
	char date[64], rnd[17], qn[600], addr[O365_MAX_ADDRESS + 1];
	int r, n;

	if (sm_hdrs_find(h, "Date", 0) < 0) {
		if (sm_rfc5322_date(time(NULL), date, sizeof(date)) != 0)
			return O365_E_INVAL;
		if ((r = sm_hdrs_add(h, 0, "Date: %s", date)) != O365_OK)
			return r;
	}
	if (sm_hdrs_find(h, "Message-ID", 0) < 0) {
		if ((r = sm_random_hex(rnd, 8)) != O365_OK)
			return r;
		if ((r = sm_hdrs_add(h, 0, "Message-ID: <%lld.%s@%s>", (long long)time(NULL), rnd,
		    id->fqdn)) != O365_OK)
			return r;
	}
	if (sm_hdrs_find(h, "From", 0) < 0) {
		if (id->sender != NULL && id->sender[0] != '\0')
			n = snprintf(addr, sizeof(addr), "%s", id->sender);
		else
			n = snprintf(addr, sizeof(addr), "%s@%s", id->user, id->fqdn);
		if (n < 0 || (size_t)n >= sizeof(addr))
			return O365_E_TOOLONG;
		if (id->fullname != NULL && id->fullname[0] != '\0') {
			quote_name(qn, sizeof(qn), id->fullname);
			r = sm_hdrs_add(h, 0, "From: %s <%s>", qn, addr);
		} else {
			r = sm_hdrs_add(h, 0, "From: %s", addr);
		}
		if (r != O365_OK)
			return r;
	}
	return O365_OK;
}

int
sm_addr_is_local(const char *addr, const char *fqdn)
{
	const char *at = strrchr(addr, '@'), *dom;
	size_t shortlen;

	if (at == NULL)
		return 1;
	dom = at + 1;
	if (strchr(dom, '.') == NULL)		/* "root@web1", "root@localhost" */
		return 1;
	if (strcasecmp(dom, "localhost.localdomain") == 0 || fqdn == NULL)
		return strcasecmp(dom, "localhost.localdomain") == 0;
	if (strcasecmp(dom, fqdn) == 0)
		return 1;
	shortlen = strcspn(fqdn, ".");
	return strlen(dom) == shortlen && strncasecmp(dom, fqdn, shortlen) == 0;
}

/* Rebuild "Name: a@b, "N" <c@d>" when a list holds a bare (domain-less) address. */
static int
hdrs_qualify(struct sm_hdrs *h, size_t i, const char *fqdn)
{
	struct sm_addrs a = { 0 };
	char *v = NULL, *line = NULL, qn[600];
	size_t k, cap, o;
	int r, bare = 0, n;

	if ((v = sm_hdr_value(&h->v[i])) == NULL)
		return O365_E_NOMEM;
	if ((r = sm_addrs_parse(&a, v, strlen(v))) != O365_OK) {
		r = O365_OK;		/* leave what we cannot parse alone */
		goto out;
	}
	for (k = 0; k < a.n; k++)
		if (strchr(a.v[k].addr, '@') == NULL)
			bare = 1;
	if (!bare)
		goto out;
	cap = h->v[i].namelen + 4 + a.n * (sizeof(qn) + O365_MAX_ADDRESS + 300);
	if ((line = malloc(cap)) == NULL) {
		r = O365_E_NOMEM;
		goto out;
	}
	o = (size_t)snprintf(line, cap, "%.*s:", (int)h->v[i].namelen, h->v[i].text);
	for (k = 0; k < a.n; k++) {
		quote_name(qn, sizeof(qn), a.v[k].name);
		n = snprintf(line + o, cap - o, "%s%s%s%s%s%s%s%s", k ? ",\n" : "", " ",
		    a.v[k].name[0] ? qn : "", a.v[k].name[0] ? " <" : "", a.v[k].addr,
		    strchr(a.v[k].addr, '@') ? "" : "@", strchr(a.v[k].addr, '@') ? "" : fqdn,
		    a.v[k].name[0] ? ">" : "");
		if (n < 0 || (size_t)n >= cap - o) {
			r = O365_E_TOOLONG;
			goto out;
		}
		o += (size_t)n;
	}
	if (o + 2 > cap) {
		r = O365_E_TOOLONG;
		goto out;
	}
	line[o++] = '\n';
	line[o] = '\0';
	h->total -= h->v[i].len;
	h->total += o;
	free(h->v[i].text);
	h->v[i].text = line;
	h->v[i].len = o;
	line = NULL;
out:
	free(line);
	free(v);
	sm_addrs_free(&a);
	return r;
}

int
sm_hdrs_rewrite(struct sm_hdrs *h, enum sm_rewrite mode, const char *relay, const char *fqdn,
    int *rewritten)
{
	struct sm_addrs a = { 0 };
	char orig[O365_MAX_ADDRESS + 300], disp[700], qn[1400], *v = NULL;
	long fi;
	size_t i;
	int r = O365_OK, doit;

	*rewritten = 0;
	fi = sm_hdrs_find(h, "From", 0);
	if (relay != NULL && mode != SM_REWRITE_NEVER) {
		orig[0] = disp[0] = '\0';
		if (fi >= 0) {
			if ((v = sm_hdr_value(&h->v[fi])) == NULL)
				return O365_E_NOMEM;
			if (sm_addrs_parse(&a, v, strlen(v)) == O365_OK && a.n > 0) {
				snprintf(orig, sizeof(orig), "%s%s%s", a.v[0].addr,
				    strchr(a.v[0].addr, '@') ? "" : "@",
				    strchr(a.v[0].addr, '@') ? "" : fqdn);
				snprintf(disp, sizeof(disp), "%s", a.v[0].name);
			}
		}
		if (mode == SM_REWRITE_ALWAYS)
			doit = strcasecmp(orig, relay) != 0;
		else
			doit = orig[0] == '\0' || sm_addr_is_local(orig, fqdn);
		if (doit) {
			if (orig[0] != '\0' && disp[0] != '\0')
				snprintf(qn, sizeof(qn), "%s (%s)", disp, orig);
			else
				snprintf(qn, sizeof(qn), "%s", orig[0] ? orig : "");
			quote_name(disp, sizeof(disp), qn);
			if (fi >= 0)
				h->v[fi].drop = 1;
			if (qn[0] != '\0')
				r = sm_hdrs_add(h, 0, "From: %s <%s>", disp, relay);
			else
				r = sm_hdrs_add(h, 0, "From: %s", relay);
			if (r != O365_OK)
				goto out;
			/* a reply should still reach the author where it can */
			if (orig[0] != '\0' && !sm_addr_is_local(orig, fqdn) &&
			    sm_hdrs_find(h, "Reply-To", 0) < 0 &&
			    (r = sm_hdrs_add(h, 0, "Reply-To: %s", orig)) != O365_OK)
				goto out;
			*rewritten = 1;
		}
	}
	for (i = 0; i < h->n; i++) {
		if (h->v[i].drop)
			continue;
		if ((hdr_is(&h->v[i], "To") || hdr_is(&h->v[i], "Cc") || hdr_is(&h->v[i], "From") ||
		    hdr_is(&h->v[i], "Reply-To")) && (r = hdrs_qualify(h, i, fqdn)) != O365_OK)
			goto out;
	}
out:
	free(v);
	sm_addrs_free(&a);
	return r;
}

int
sm_hdrs_write(const struct sm_hdrs *h, struct sm_out *out)
{
	size_t i;
	int r;

	for (i = 0; i < h->n; i++) {
		if (h->v[i].drop)
			continue;
		if ((r = sm_out_write(out, h->v[i].text, h->v[i].len)) != O365_OK)
			return r;
		if (h->v[i].len > 0 && h->v[i].text[h->v[i].len - 1] != '\n' &&
		    (r = sm_out_write(out, "\n", 1)) != O365_OK)
			return r;
	}
	if ((r = sm_out_write(out, "\n", 1)) != O365_OK)
		return r;
	if (h->body_first != NULL)
		return sm_out_write(out, h->body_first, h->body_first_len);
	return O365_OK;
}
