/*
 * conf.h: load a libconfig file into a plain struct through a key table.
 *
 * Each front end describes its keys once (path, type, where in its struct,
 * default, range); o365_conf_load() fills the struct, applies defaults, and
 * refuses unknown keys, wrong types and out-of-range values with a message
 * naming the file, the line and the key.
 */
#ifndef O365_CONF_H
#define O365_CONF_H

#include <stddef.h>
#include "err.h"

enum o365_conf_type {
	O365_CONF_STR,		/* char *, strdup'd; def_s may be NULL */
	O365_CONF_INT,		/* int, within [min, max] */
	O365_CONF_BOOL,		/* int 0/1 */
	O365_CONF_ENUM,		/* char *, one of choices[] (NULL-terminated) */
	O365_CONF_STRLIST,	/* char **, NULL-terminated; a string or a list of strings */
	O365_CONF_MAP,		/* struct o365_conf_pair *, NULL-name-terminated; a group of name = "value" */
};

struct o365_conf_pair {
	char	*name;
	char	*value;
};

struct o365_conf_key {
	const char		*path;		/* "imap.host": group.setting */
	enum o365_conf_type	 type;
	size_t			 off;		/* offsetof(struct front_conf, imap.host) */
	const char		*def_s;		/* STR / ENUM default */
	long			 def_i;		/* INT / BOOL default */
	long			 min, max;	/* INT range */
	const char *const	*choices;	/* ENUM */
};

/*
 * Load path into out (a front end's struct, zeroed by the caller) using keys.
 * Every key gets its default first.  O365_E_IO (cannot read), O365_E_CONFIG
 * (syntax, unknown key, wrong type, out of range: err->why is
 * "FILE:LINE: KEY: what is wrong").  On error out is freed and zeroed.
 */
int	o365_conf_load(const char *path, const struct o365_conf_key *keys, size_t nkeys,
	    void *out, struct o365_error *err) O365_MUST_CHECK;

/* The same from a string in memory (tests, fuzzing); name is used in messages. */
int	o365_conf_load_string(const char *text, const char *name,
	    const struct o365_conf_key *keys, size_t nkeys, void *out,
	    struct o365_error *err) O365_MUST_CHECK;

/* Free what load allocated in out (strings, lists, maps) and zero those fields. */
void	o365_conf_free(const struct o365_conf_key *keys, size_t nkeys, void *out);

#endif
