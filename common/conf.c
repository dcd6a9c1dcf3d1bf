/*
 * conf.c: load a libconfig file into a front end's struct through a key table.
 *
 * The file is read by us (size-capped), checked for @include and for integer
 * literals that libconfig 1.5 would silently wrap, parsed with
 * config_read_string(), and then the whole tree is walked: every setting must
 * be a key of the table (or a group on the way to one), of the right type and
 * within range.  Errors read "FILE:LINE: KEY: what is wrong".
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>

#include "o365/conf.h"
#include "o365/limits.h"

#define CONF_MAX_PATH	256	/* longest dotted key path we report in full */
#define CONF_MAX_WRAPS	16	/* overflowing integer literals remembered */

/* An integer literal that libconfig 1.5 would store wrapped (see conf_scan). */
struct conf_wrap {
	unsigned int	line;
	long long	value;		/* what libconfig stores instead */
	char		name[64];	/* the last name before it: its setting's */
	int		claimed;
};

struct conf_ctx {
	const char			*name;
	const struct o365_conf_key	*keys;
	size_t				 nkeys;
	void				*out;
	struct o365_error		*err;
	struct conf_wrap		 wraps[CONF_MAX_WRAPS];
	size_t				 nwraps;
};

static int	conf_fail(struct conf_ctx *, unsigned int, const char *, const char *, ...)
		    O365_PRINTF(4, 5);

static int
conf_fail(struct conf_ctx *c, unsigned int line, const char *key, const char *fmt, ...)
{
	char what[200];
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(what, sizeof(what), fmt, ap) < 0)
		what[0] = '\0';
	va_end(ap);
	return o365_error_set(c->err, O365_E_CONFIG, "%s:%u: %s: %s", c->name, line, key, what);
}

static void *
conf_field(void *out, const struct o365_conf_key *k)
{
	return (char *)out + k->off;
}

static void
conf_free_strlist(char **l)
{
	size_t i;

	if (l == NULL)
		return;
	for (i = 0; l[i] != NULL; i++)
		free(l[i]);
	free(l);
}

static void
conf_free_map(struct o365_conf_pair *m)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; m[i].name != NULL; i++) {
		free(m[i].name);
		free(m[i].value);
	}
	free(m);
}

void
o365_conf_free(const struct o365_conf_key *keys, size_t nkeys, void *out)
{
	size_t i;

	if (keys == NULL || out == NULL)
		return;
	for (i = 0; i < nkeys; i++) {
		void *f = conf_field(out, &keys[i]);

		switch (keys[i].type) {
		case O365_CONF_STR:
		case O365_CONF_ENUM:
			free(*(char **)f);
			*(char **)f = NULL;
			break;
		case O365_CONF_INT:
		case O365_CONF_BOOL:
			*(int *)f = 0;
			break;
		case O365_CONF_STRLIST:
			conf_free_strlist(*(char ***)f);
			*(char ***)f = NULL;
			break;
		case O365_CONF_MAP:
			conf_free_map(*(struct o365_conf_pair **)f);
			*(struct o365_conf_pair **)f = NULL;
			break;
		}
	}
}

/* INT keys with min == max == 0 take any int. */
static void
conf_range(const struct o365_conf_key *k, long long *lo, long long *hi)
{
	if (k->min == 0 && k->max == 0) {
		*lo = INT_MIN;
		*hi = INT_MAX;
		return;
	}
	*lo = k->min < INT_MIN ? INT_MIN : k->min;
	*hi = k->max > INT_MAX ? INT_MAX : k->max;
}

static int
conf_defaults(struct conf_ctx *c)
{
	size_t i;

	for (i = 0; i < c->nkeys; i++) {
		const struct o365_conf_key *k = &c->keys[i];
		void *f = conf_field(c->out, k);
		char **l;

		switch (k->type) {
		case O365_CONF_STR:
		case O365_CONF_ENUM:
			if (k->def_s != NULL && (*(char **)f = strdup(k->def_s)) == NULL)
				return O365_E_NOMEM;
			break;
		case O365_CONF_INT:
		case O365_CONF_BOOL:
			*(int *)f = (int)k->def_i;
			break;
		case O365_CONF_STRLIST:
			if ((l = calloc(2, sizeof(*l))) == NULL)
				return O365_E_NOMEM;
			*(char ***)f = l;
			if (k->def_s != NULL && (l[0] = strdup(k->def_s)) == NULL)
				return O365_E_NOMEM;
			break;
		case O365_CONF_MAP:
			if ((*(struct o365_conf_pair **)f = calloc(1,
			    sizeof(struct o365_conf_pair))) == NULL)
				return O365_E_NOMEM;
			break;
		}
	}
	return O365_OK;
}

/*
 * libconfig 1.5 stores "x = 4294967297;" as 1 and "0x100000001" as 1 without
 * a word (it casts strtol's result to int).  We scan the text for integer
 * literals the way its lexer does (skipping strings and comments) and
 * remember those that do not fit, so the walk can refuse them by key.
 *
 *   integer   [-+]?[0-9]+          int64    [-+]?[0-9]+LL?
 *   hex       0[Xx][0-9A-Fa-f]+    hex64    0[Xx][0-9A-Fa-f]+LL?
 *
 * Also refuse "@include" (libconfig: ^[ \t]*@include) here; see conf.h.
 */
static int
conf_numtok(struct conf_ctx *c, const char *t, size_t n, unsigned int line, const char *name)
{
	char buf[64], *tok = buf, *end;
	size_t i = 0, digits;
	int hex = 0, l64 = 0, wraps = 0, r = O365_OK;
	long long v = 0;

	/* whole: "000...0004294967297" must not be cut to a harmless prefix */
	if (n >= sizeof(buf) && (tok = malloc(n + 1)) == NULL)
		return O365_E_NOMEM;
	memcpy(tok, t, n);
	tok[n] = '\0';
	if (tok[0] == '+' || tok[0] == '-')
		i++;
	if (tok[i] == '0' && (tok[i + 1] == 'x' || tok[i + 1] == 'X')) {
		if (i != 0)
			goto out;	/* "-0x1": a syntax error for libconfig */
		hex = 1;
		i += 2;
	}
	digits = i;
	while (hex ? ((tok[i] >= '0' && tok[i] <= '9') || (tok[i] >= 'a' && tok[i] <= 'f') ||
	    (tok[i] >= 'A' && tok[i] <= 'F')) : (tok[i] >= '0' && tok[i] <= '9'))
		i++;
	if (i == digits)
		goto out;
	if (strcmp(tok + i, "L") == 0 || strcmp(tok + i, "LL") == 0)
		l64 = 1;
	else if (tok[i] != '\0')
		goto out;		/* a float or garbage: libconfig decides */
	tok[i] = '\0';
	errno = 0;
	if (hex) {
		unsigned long long u = strtoull(tok, &end, 16);

		wraps = errno == ERANGE || u > (l64 ? (unsigned long long)LLONG_MAX :
		    (unsigned long long)INT_MAX);
		v = (long long)(int)(unsigned int)u;
	} else {
		v = strtoll(tok, &end, 10);
		/* int64 literals saturate, which the range check refuses */
		wraps = !l64 && (errno == ERANGE || v > INT_MAX || v < INT_MIN);
		v = (long long)(int)(unsigned int)(unsigned long long)v;
	}
	if (!wraps)
		goto out;
	if (c->nwraps == CONF_MAX_WRAPS) {
		r = conf_fail(c, line, "(integer)", "too many integers out of range");
		goto out;
	}
	c->wraps[c->nwraps].line = line;
	c->wraps[c->nwraps].value = v;
	c->wraps[c->nwraps].claimed = 0;
	(void)snprintf(c->wraps[c->nwraps].name, sizeof(c->wraps[0].name), "%s", name);
	c->nwraps++;
out:
	if (tok != buf)
		free(tok);
	return r;
}

#define IS_NAMECH(ch) (((ch) >= 'A' && (ch) <= 'Z') || ((ch) >= 'a' && (ch) <= 'z') || \
	((ch) >= '0' && (ch) <= '9') || (ch) == '-' || (ch) == '_' || (ch) == '*')
#define IS_NUMCH(ch) (IS_NAMECH(ch) || (ch) == '.' || (ch) == '+')

static int
conf_scan(struct conf_ctx *c, const char *s)
{
	unsigned int line = 1;
	int bol = 1;		/* only blanks since the start of the line */
	char name[64] = "";	/* the last name seen (cut: it then matches nothing) */
	size_t n;
	int r;

	while (*s != '\0') {
		if (*s == '\n') {
			line++;
			bol = 1;
			s++;
			continue;
		}
		if (*s == ' ' || *s == '\t') {
			s++;
			continue;
		}
		if (bol && strncmp(s, "@include", 8) == 0)
			return conf_fail(c, line, "@include", "includes are not allowed");
		bol = 0;
		if (*s == '#' || (s[0] == '/' && s[1] == '/')) {
			while (*s != '\0' && *s != '\n')
				s++;
		} else if (s[0] == '/' && s[1] == '*') {
			for (s += 2; *s != '\0' && !(s[0] == '*' && s[1] == '/'); s++)
				if (*s == '\n')
					line++;
			if (*s != '\0')
				s += 2;
		} else if (*s == '"') {
			for (s++; *s != '\0' && *s != '"'; s++) {
				if (*s == '\n')
					line++;
				if (*s == '\\' && s[1] != '\0')
					s++;
			}
			if (*s != '\0')
				s++;
		} else if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '*') {
			for (n = 0; IS_NAMECH(s[n]); n++)
				;
			if (n < sizeof(name)) {
				memcpy(name, s, n);
				name[n] = '\0';
			} else {
				name[0] = '\0';
			}
			s += n;
		} else if ((*s >= '0' && *s <= '9') || *s == '+' || *s == '-' || *s == '.') {
			for (n = 0; IS_NUMCH(s[n]); n++)
				;
			if ((r = conf_numtok(c, s, n, line, name)) != O365_OK)
				return r;
			s += n;
		} else {
			s++;
		}
	}
	return O365_OK;
}

static int
conf_check_text(struct conf_ctx *c, const char *path, unsigned int line, const char *v)
{
	const unsigned char *p;

	for (p = (const unsigned char *)v; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			return conf_fail(c, line, path, "control character in the value");
	return O365_OK;
}

static int
conf_get_string(struct conf_ctx *c, const char *path, config_setting_t *s, char **out)
{
	unsigned int line = config_setting_source_line(s);
	const char *v;
	int r;

	if (config_setting_type(s) != CONFIG_TYPE_STRING ||
	    (v = config_setting_get_string(s)) == NULL)
		return conf_fail(c, line, path, "expected a string in double quotes");
	if ((r = conf_check_text(c, path, line, v)) != O365_OK)
		return r;
	if ((*out = strdup(v)) == NULL)
		return O365_E_NOMEM;
	return O365_OK;
}

static int
conf_set_int(struct conf_ctx *c, const struct o365_conf_key *k, const char *path,
    config_setting_t *s)
{
	unsigned int line = config_setting_source_line(s);
	long long v, lo, hi;
	size_t i;

	if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
		return conf_fail(c, line, path, "expected an integer");
	v = config_setting_get_int64(s);
	conf_range(k, &lo, &hi);
	/* the setting's line is its name's; the literal may follow on a later one */
	for (i = 0; i < c->nwraps; i++) {
		if (!c->wraps[i].claimed && c->wraps[i].line >= line && c->wraps[i].value == v &&
		    strcmp(c->wraps[i].name, config_setting_name(s)) == 0) {
			c->wraps[i].claimed = 1;
			return conf_fail(c, c->wraps[i].line, path, "integer too large; expected %lld..%lld",
			    lo, hi);
		}
	}
	if (v < lo || v > hi)
		return conf_fail(c, line, path, "%lld is out of range %lld..%lld", v, lo, hi);
	*(int *)conf_field(c->out, k) = (int)v;
	return O365_OK;
}

static int
conf_set_enum(struct conf_ctx *c, const struct o365_conf_key *k, const char *path,
    config_setting_t *s)
{
	unsigned int line = config_setting_source_line(s);
	char **f = conf_field(c->out, k);
	char list[120];
	size_t i, o = 0;
	const char *v;
	int n;

	if (config_setting_type(s) != CONFIG_TYPE_STRING ||
	    (v = config_setting_get_string(s)) == NULL)
		return conf_fail(c, line, path, "expected a string in double quotes");
	for (i = 0; k->choices != NULL && k->choices[i] != NULL; i++) {
		if (strcmp(v, k->choices[i]) == 0) {
			free(*f);
			if ((*f = strdup(k->choices[i])) == NULL)
				return O365_E_NOMEM;
			return O365_OK;
		}
	}
	list[0] = '\0';
	for (i = 0; k->choices != NULL && k->choices[i] != NULL && o < sizeof(list); i++) {
		n = snprintf(list + o, sizeof(list) - o, "%s\"%s\"", i ? ", " : "", k->choices[i]);
		if (n < 0)
			break;
		o += (size_t)n;		/* past the end ends the loop; snprintf cut it */
	}
	return conf_fail(c, line, path, "\"%.40s\" is not one of %s", v, list);
}

static int
conf_set_strlist(struct conf_ctx *c, const struct o365_conf_key *k, const char *path,
    config_setting_t *s)
{
	char ***f = conf_field(c->out, k);
	char **l = NULL;
	int i, n, r, t = config_setting_type(s);

	if (t == CONFIG_TYPE_STRING) {
		n = 1;
	} else if (t == CONFIG_TYPE_LIST || t == CONFIG_TYPE_ARRAY) {
		n = config_setting_length(s);
	} else {
		return conf_fail(c, config_setting_source_line(s), path,
		    "expected a string or a list of strings");
	}
	if ((l = calloc((size_t)n + 1, sizeof(*l))) == NULL)
		return O365_E_NOMEM;
	for (i = 0; i < n; i++) {
		config_setting_t *e = t == CONFIG_TYPE_STRING ? s : config_setting_get_elem(s,
		    (unsigned int)i);

		if (e == NULL) {
			r = conf_fail(c, config_setting_source_line(s), path, "unreadable list");
			goto fail;
		}
		if ((r = conf_get_string(c, path, e, &l[i])) != O365_OK)
			goto fail;
	}
	conf_free_strlist(*f);
	*f = l;
	return O365_OK;
fail:
	conf_free_strlist(l);
	return r;
}

static int
conf_set_map(struct conf_ctx *c, const struct o365_conf_key *k, const char *path,
    config_setting_t *s)
{
	struct o365_conf_pair **f = conf_field(c->out, k);
	struct o365_conf_pair *m = NULL;
	char ep[CONF_MAX_PATH];
	int i, n, r;

	if (config_setting_type(s) != CONFIG_TYPE_GROUP)
		return conf_fail(c, config_setting_source_line(s), path,
		    "expected a group of name = \"value\"; settings");
	n = config_setting_length(s);
	if ((m = calloc((size_t)n + 1, sizeof(*m))) == NULL)
		return O365_E_NOMEM;
	for (i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, (unsigned int)i);
		const char *name = e != NULL ? config_setting_name(e) : NULL;

		if (name == NULL) {
			r = conf_fail(c, config_setting_source_line(s), path, "unreadable group");
			goto fail;
		}
		(void)snprintf(ep, sizeof(ep), "%s.%s", path, name);	/* a cut only shortens the message */
		if ((r = conf_get_string(c, ep, e, &m[i].value)) != O365_OK)
			goto fail;
		if ((m[i].name = strdup(name)) == NULL) {
			r = O365_E_NOMEM;
			goto fail;
		}
	}
	conf_free_map(*f);
	*f = m;
	return O365_OK;
fail:
	for (i = 0; i < n; i++) {
		free(m[i].name);
		free(m[i].value);
	}
	free(m);
	return r;
}

static int
conf_set(struct conf_ctx *c, const struct o365_conf_key *k, const char *path,
    config_setting_t *s)
{
	unsigned int line = config_setting_source_line(s);
	char *v = NULL;
	char **f;
	int r;

	switch (k->type) {
	case O365_CONF_STR:
		if ((r = conf_get_string(c, path, s, &v)) != O365_OK)
			return r;
		f = conf_field(c->out, k);
		free(*f);
		*f = v;
		return O365_OK;
	case O365_CONF_INT:
		return conf_set_int(c, k, path, s);
	case O365_CONF_BOOL:
		if (config_setting_type(s) != CONFIG_TYPE_BOOL)
			return conf_fail(c, line, path, "expected true or false");
		*(int *)conf_field(c->out, k) = config_setting_get_bool(s) ? 1 : 0;
		return O365_OK;
	case O365_CONF_ENUM:
		return conf_set_enum(c, k, path, s);
	case O365_CONF_STRLIST:
		return conf_set_strlist(c, k, path, s);
	case O365_CONF_MAP:
		return conf_set_map(c, k, path, s);
	}
	return conf_fail(c, line, path, "bad key table entry");
}

static const struct o365_conf_key *
conf_find(const struct conf_ctx *c, const char *path, int *is_prefix)
{
	size_t i, n = strlen(path);

	*is_prefix = 0;
	for (i = 0; i < c->nkeys; i++) {
		if (strcmp(c->keys[i].path, path) == 0)
			return &c->keys[i];
		if (strncmp(c->keys[i].path, path, n) == 0 && c->keys[i].path[n] == '.')
			*is_prefix = 1;
	}
	return NULL;
}

static int
conf_walk(struct conf_ctx *c, config_setting_t *group, const char *prefix)
{
	const struct o365_conf_key *k;
	char path[CONF_MAX_PATH];
	int i, n, is_prefix, r;

	n = config_setting_length(group);
	for (i = 0; i < n; i++) {
		config_setting_t *s = config_setting_get_elem(group, (unsigned int)i);
		const char *name = s != NULL ? config_setting_name(s) : NULL;
		unsigned int line;
		int len;

		if (name == NULL)
			return conf_fail(c, config_setting_source_line(group), prefix,
			    "unnamed setting");
		line = config_setting_source_line(s);
		len = snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", name);
		if (len < 0 || (size_t)len >= sizeof(path))
			return conf_fail(c, line, path, "unknown key");
		if ((k = conf_find(c, path, &is_prefix)) != NULL) {
			if ((r = conf_set(c, k, path, s)) != O365_OK)
				return r;
		} else if (is_prefix && config_setting_type(s) == CONFIG_TYPE_GROUP) {
			if ((r = conf_walk(c, s, path)) != O365_OK)
				return r;
		} else if (is_prefix) {
			return conf_fail(c, line, path, "expected a group { ... }");
		} else {
			return conf_fail(c, line, path, config_setting_type(s) == CONFIG_TYPE_GROUP ?
			    "unknown group" : "unknown key");
		}
	}
	return O365_OK;
}

static int
conf_parse(struct conf_ctx *c, const char *text)
{
	config_t cf;
	size_t i;
	int r;

	if ((r = conf_scan(c, text)) != O365_OK)
		return r;
	config_init(&cf);
	/*
	 * libconfig 1.5 leaks a string token (tens of bytes) when a syntax error
	 * follows it: its grammar has no %destructor.  Nothing we can free; the
	 * fuzz and memcheck runs suppress it (tests/lsan.supp, valgrind.supp).
	 */
	if (config_read_string(&cf, text) != CONFIG_TRUE) {
		r = conf_fail(c, (unsigned int)config_error_line(&cf), "syntax error", "%s",
		    config_error_text(&cf) != NULL ? config_error_text(&cf) : "cannot parse");
		goto out;
	}
	if ((r = conf_walk(c, config_root_setting(&cf), "")) != O365_OK)
		goto out;
	/* every overflowing literal belongs to some setting; be sure */
	for (i = 0; i < c->nwraps; i++) {
		if (!c->wraps[i].claimed) {
			r = conf_fail(c, c->wraps[i].line, "(integer)", "integer out of range");
			goto out;
		}
	}
	r = O365_OK;
out:
	config_destroy(&cf);
	return r;
}

static int
conf_load_text(const char *text, const char *name, const struct o365_conf_key *keys,
    size_t nkeys, void *out, struct o365_error *err)
{
	struct conf_ctx c;
	int r;

	memset(&c, 0, sizeof(c));
	c.name = name != NULL ? name : "(string)";
	c.keys = keys;
	c.nkeys = nkeys;
	c.out = out;
	c.err = err;
	if ((r = conf_defaults(&c)) != O365_OK) {
		(void)o365_error_set(err, r, "%s: out of memory", c.name);
		goto out;
	}
	if (text == NULL) {
		r = o365_error_set(err, O365_E_INVAL, "%s: no text", c.name);
		goto out;
	}
	if (strlen(text) > O365_MAX_CONF_FILE) {
		r = o365_error_set(err, O365_E_CONFIG, "%s: larger than %d bytes", c.name,
		    O365_MAX_CONF_FILE);
		goto out;
	}
	if ((r = conf_parse(&c, text)) == O365_E_NOMEM)
		(void)o365_error_set(err, r, "%s: out of memory", c.name);
out:
	if (r != O365_OK)
		o365_conf_free(keys, nkeys, out);
	return r;
}

int
o365_conf_load_string(const char *text, const char *name, const struct o365_conf_key *keys,
    size_t nkeys, void *out, struct o365_error *err)
{
	return conf_load_text(text, name, keys, nkeys, out, err);
}

int
o365_conf_load(const char *path, const struct o365_conf_key *keys, size_t nkeys, void *out,
    struct o365_error *err)
{
	struct stat st;
	char *text = NULL;
	size_t got = 0;
	ssize_t n;
	int fd, r;

	/* O_NONBLOCK: a FIFO must not hang us; it is refused after fstat */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) == -1)
		return o365_error_set(err, O365_E_IO, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) == -1) {
		r = o365_error_set(err, O365_E_IO, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = o365_error_set(err, O365_E_CONFIG, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_size > O365_MAX_CONF_FILE) {
		r = o365_error_set(err, O365_E_CONFIG, "%s: larger than %d bytes", path,
		    O365_MAX_CONF_FILE);
		goto out;
	}
	if ((text = malloc(O365_MAX_CONF_FILE + 2)) == NULL) {
		r = o365_error_set(err, O365_E_NOMEM, "%s: out of memory", path);
		goto out;
	}
	/* bounded: the file may grow between fstat and read */
	for (;;) {
		n = read(fd, text + got, O365_MAX_CONF_FILE + 1 - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			r = o365_error_set(err, O365_E_IO, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > O365_MAX_CONF_FILE) {
			r = o365_error_set(err, O365_E_CONFIG, "%s: larger than %d bytes", path,
			    O365_MAX_CONF_FILE);
			goto out;
		}
	}
	text[got] = '\0';
	if (memchr(text, '\0', got) != NULL) {
		r = o365_error_set(err, O365_E_CONFIG, "%s: holds a NUL byte", path);
		goto out;
	}
	r = conf_load_text(text, path, keys, nkeys, out, err);
out:
	free(text);
	close(fd);
	return r;
}
