/*
 * conf.h: load a libconfig file into a plain struct through a key table.
 *
 * Each front end describes its keys once (path, type, where in its struct,
 * default, range); o365_conf_load() fills the struct, applies defaults, and
 * refuses unknown keys, wrong types and out-of-range values with a message
 * naming the file, the line and the key.
 *
 * Rules (libconfig 1.5 syntax):
 * - Every setting in the file must be a key of the table, or a group whose
 *   dotted path is a prefix of one ("imap { host = ...; }" for "imap.host").
 *   Unknown keys and unknown groups are errors, so typos never pass silently.
 * - STR, ENUM, STRLIST and MAP values are strings in double quotes; a byte
 *   below 0x20 or 0x7f in any of them is refused (no CR/LF reaches a protocol
 *   line through the config).  ENUM values must equal one of choices[]
 *   (case-sensitive); the field gets a copy of it.
 * - INT takes an integer (decimal, hex, with or without L) within
 *   [min, max]; min == max == 0 means any int.  Literals that do not fit,
 *   which libconfig 1.5 would silently wrap (4294967297 -> 1), are refused.
 *   BOOL takes only true or false.
 * - STRLIST takes "one" or [ "a", "b" ] or ( "a", "b" ); its default is a
 *   one-element list of def_s, or an empty list when def_s is NULL.  MAP is
 *   a group of name = "value"; pairs, default empty.  After a successful
 *   load both are never NULL (an empty one is just the terminator).
 * - "@include" is refused: a config file read by a setuid-root context (PAM
 *   in sudo/su) must not make us open other paths, and libconfig 1.5 would
 *   resolve relative includes against the current directory.  The check
 *   scans the text as libconfig's lexer does: a line starting with blanks
 *   and "@include", outside strings and comments.
 * - A file is refused when it is not a regular file, is larger than
 *   O365_MAX_CONF_FILE or holds a NUL byte.  Symbolic links are followed
 *   (/etc/alternatives-style setups); the file's owner and mode are the
 *   front end's business.
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
	const char		*def_s;		/* STR / ENUM / STRLIST default (NULL: none) */
	long			 def_i;		/* INT / BOOL default */
	long			 min, max;	/* INT range, inclusive; 0, 0: any int */
	const char *const	*choices;	/* ENUM */
};

/*
 * Load path into out (a front end's struct, zeroed by the caller) using keys.
 * Every key gets its default first.  O365_E_IO (cannot open or read),
 * O365_E_NOMEM, O365_E_CONFIG (syntax, unknown key, wrong type, out of range:
 * err->why is "FILE:LINE: KEY: what is wrong"; a syntax error reads
 * "FILE:LINE: syntax error: libconfig's text"; a file-level refusal
 * "FILE: what is wrong").  On error every field of the table is freed and
 * zeroed; on success free with o365_conf_free().
 */
int	o365_conf_load(const char *path, const struct o365_conf_key *keys, size_t nkeys,
	    void *out, struct o365_error *err) O365_MUST_CHECK;

/* The same from a NUL-terminated string in memory (tests, fuzzing); name is
 * used in messages.  O365_E_INVAL if text is NULL. */
int	o365_conf_load_string(const char *text, const char *name,
	    const struct o365_conf_key *keys, size_t nkeys, void *out,
	    struct o365_error *err) O365_MUST_CHECK;

/* Free what load allocated in out (strings, lists, maps) and zero those fields. */
void	o365_conf_free(const struct o365_conf_key *keys, size_t nkeys, void *out);

#endif
