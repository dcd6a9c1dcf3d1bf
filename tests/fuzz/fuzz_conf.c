/*
 * fuzz_conf.c: arbitrary bytes as a config file, loaded through a key table
 * like the front ends' (every type, nested groups, a map, a list).  Whatever
 * the input, the load must succeed or fail cleanly, and a failure must leave
 * the struct zeroed.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "o365/conf.h"

struct fconf {
	char			*host;
	int			 port;
	int			 timeout;
	int			 debug;
	char			*auth;
	char			**users;
	struct o365_conf_pair	*aliases;
	char			*from;
	int			 any;
};

static const char *const auths[] = { "plain", "login", "xoauth2", NULL };

#define OFF(f) offsetof(struct fconf, f)
static const struct o365_conf_key keys[] = {
	{ .path = "imap.host", .type = O365_CONF_STR, .off = OFF(host), .def_s = "outlook.office365.com" },
	{ .path = "imap.port", .type = O365_CONF_INT, .off = OFF(port), .def_i = 993, .min = 1, .max = 65535 },
	{ .path = "imap.timeout", .type = O365_CONF_INT, .off = OFF(timeout), .def_i = 10, .min = 1, .max = 300 },
	{ .path = "debug", .type = O365_CONF_BOOL, .off = OFF(debug) },
	{ .path = "smtp.auth.mech", .type = O365_CONF_ENUM, .off = OFF(auth), .def_s = "xoauth2", .choices = auths },
	{ .path = "users", .type = O365_CONF_STRLIST, .off = OFF(users) },
	{ .path = "aliases", .type = O365_CONF_MAP, .off = OFF(aliases) },
	{ .path = "smtp.from", .type = O365_CONF_STR, .off = OFF(from) },
	{ .path = "any", .type = O365_CONF_INT, .off = OFF(any) },
};

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct fconf zero;
	struct o365_error err;
	struct fconf c;
	char *text;
	size_t i;

	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	memset(&c, 0, sizeof(c));
	if (o365_conf_load_string(text, "fuzz.conf", keys, sizeof(keys) / sizeof(keys[0]),
	    &c, &err) == O365_OK) {
		if (c.host == NULL || c.auth == NULL || c.users == NULL || c.aliases == NULL ||
		    c.port < 1 || c.port > 65535 || c.timeout < 1 || c.timeout > 300 ||
		    (c.debug != 0 && c.debug != 1))
			abort();
		for (i = 0; c.users[i] != NULL; i++)
			if (strpbrk(c.users[i], "\r\n") != NULL)
				abort();
		for (i = 0; c.aliases[i].name != NULL; i++)
			if (c.aliases[i].value == NULL)
				abort();
		o365_conf_free(keys, sizeof(keys) / sizeof(keys[0]), &c);
	} else if (memcmp(&c, &zero, sizeof(c)) != 0 || err.why[0] == '\0') {
		abort();
	}
	free(text);
	return 0;
}
