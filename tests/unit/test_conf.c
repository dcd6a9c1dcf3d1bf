/* test_conf.c: key-table config loading, defaults, and every refusal. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "o365/conf.h"
#include "o365/limits.h"
#include "spawn.h"

struct tconf {
	char			*host;
	int			 port;
	int			 debug;
	char			*mode;
	char			**domains;
	struct o365_conf_pair	*aliases;
	int			 offset;
	int			 any;
	char			*nodef;
	char			*cert;
};

static const char *const modes[] = { "imap", "smtp", "both", NULL };

#define OFF(f) offsetof(struct tconf, f)
static const struct o365_conf_key keys[] = {
	{ .path = "server.host", .type = O365_CONF_STR, .off = OFF(host), .def_s = "outlook.office365.com" },
	{ .path = "server.port", .type = O365_CONF_INT, .off = OFF(port), .def_i = 993, .min = 1, .max = 65535 },
	{ .path = "debug", .type = O365_CONF_BOOL, .off = OFF(debug), .def_i = 0 },
	{ .path = "mode", .type = O365_CONF_ENUM, .off = OFF(mode), .def_s = "imap", .choices = modes },
	{ .path = "allow.domains", .type = O365_CONF_STRLIST, .off = OFF(domains), .def_s = "contoso.com" },
	{ .path = "aliases", .type = O365_CONF_MAP, .off = OFF(aliases) },
	{ .path = "offset", .type = O365_CONF_INT, .off = OFF(offset), .def_i = -5, .min = -10, .max = 10 },
	{ .path = "any", .type = O365_CONF_INT, .off = OFF(any) },
	{ .path = "nodef", .type = O365_CONF_STR, .off = OFF(nodef) },
	{ .path = "tls.client.cert", .type = O365_CONF_STR, .off = OFF(cert) },
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static int
load(const char *text, struct tconf *c, struct o365_error *err)
{
	memset(c, 0, sizeof(*c));
	o365_error_clear(err);
	return o365_conf_load_string(text, "test.conf", keys, NKEYS, c, err);
}

/* A refusal: O365_E_CONFIG, the struct zeroed, "test.conf:LINE: KEY: ..." */
static void
refused(const char *text, const char *prefix)
{
	static const struct tconf zero;
	struct o365_error err;
	struct tconf c;

	assert_int_equal(load(text, &c, &err), O365_E_CONFIG);
	assert_int_equal(err.code, O365_E_CONFIG);
	if (strncmp(err.why, prefix, strlen(prefix)) != 0)
		fail_msg("why \"%s\" does not start with \"%s\"", err.why, prefix);
	assert_memory_equal(&c, &zero, sizeof(c));
}

static void
defaults_are_applied_to_an_empty_file(void **state)
{
	struct o365_error err;
	struct tconf c;

	(void)state;
	assert_int_equal(load("", &c, &err), O365_OK);
	assert_string_equal(c.host, "outlook.office365.com");
	assert_int_equal(c.port, 993);
	assert_int_equal(c.debug, 0);
	assert_string_equal(c.mode, "imap");
	assert_non_null(c.domains);
	assert_string_equal(c.domains[0], "contoso.com");
	assert_null(c.domains[1]);
	assert_non_null(c.aliases);
	assert_null(c.aliases[0].name);
	assert_int_equal(c.offset, -5);
	assert_int_equal(c.any, 0);
	assert_null(c.nodef);
	o365_conf_free(keys, NKEYS, &c);
	assert_null(c.host);
	assert_null(c.domains);
	assert_null(c.aliases);
	assert_null(c.mode);
	assert_int_equal(c.port, 0);
}

static void
every_type_is_parsed(void **state)
{
	struct o365_error err;
	struct tconf c;

	(void)state;
	assert_int_equal(load(
	    "# a comment\n"
	    "server: { host = \"imap.example\"; port = 0x3e1; };\n"
	    "debug = true;\n"
	    "mode = \"both\";\n"
	    "allow = { domains = [ \"a.example\", \"b.example\" ]; };\n"
	    "aliases = { root = \"admin@contoso.com\"; post-master_1 = \"pm@contoso.com\"; };\n"
	    "offset = -10;\n"
	    "any = -2147483648;\n"
	    "nodef = \"x\" \"y\";\n", &c, &err), O365_OK);
	assert_string_equal(c.host, "imap.example");
	assert_int_equal(c.port, 993);
	assert_int_equal(c.debug, 1);
	assert_string_equal(c.mode, "both");
	assert_string_equal(c.domains[0], "a.example");
	assert_string_equal(c.domains[1], "b.example");
	assert_null(c.domains[2]);
	assert_string_equal(c.aliases[0].name, "root");
	assert_string_equal(c.aliases[0].value, "admin@contoso.com");
	assert_string_equal(c.aliases[1].name, "post-master_1");
	assert_string_equal(c.aliases[1].value, "pm@contoso.com");
	assert_null(c.aliases[2].name);
	assert_int_equal(c.offset, -10);
	assert_int_equal(c.any, -2147483648);
	assert_string_equal(c.nodef, "xy");
	o365_conf_free(keys, NKEYS, &c);
	o365_conf_free(keys, NKEYS, &c);	/* twice is harmless */
}

static void
strlist_takes_a_string_a_list_or_nothing(void **state)
{
	struct o365_error err;
	struct tconf c;

	(void)state;
	assert_int_equal(load("allow.domains = \"only.example\";", &c, &err), O365_E_CONFIG);
	/* "allow.domains" is not a libconfig name: the group form is needed */
	assert_non_null(strstr(err.why, "test.conf:1: syntax error"));

	assert_int_equal(load("allow = { domains = \"only.example\"; };", &c, &err), O365_OK);
	assert_string_equal(c.domains[0], "only.example");
	assert_null(c.domains[1]);
	o365_conf_free(keys, NKEYS, &c);

	assert_int_equal(load("allow = { domains = ( \"l1\", \"l2\" ); };", &c, &err), O365_OK);
	assert_string_equal(c.domains[0], "l1");
	assert_string_equal(c.domains[1], "l2");
	assert_null(c.domains[2]);
	o365_conf_free(keys, NKEYS, &c);

	assert_int_equal(load("allow = { domains = [ ]; };", &c, &err), O365_OK);
	assert_non_null(c.domains);
	assert_null(c.domains[0]);
	o365_conf_free(keys, NKEYS, &c);
}

static void
map_names_take_libconfig_name_characters(void **state)
{
	struct o365_error err;
	struct tconf c;

	(void)state;
	assert_int_equal(load("aliases = { * = \"catchall@contoso.com\"; a*b-1_2 = \"d@x\"; };",
	    &c, &err), O365_OK);
	assert_string_equal(c.aliases[0].name, "*");
	assert_string_equal(c.aliases[0].value, "catchall@contoso.com");
	assert_string_equal(c.aliases[1].name, "a*b-1_2");
	assert_string_equal(c.aliases[1].value, "d@x");
	assert_null(c.aliases[2].name);
	o365_conf_free(keys, NKEYS, &c);
	/* an empty group replaces nothing but is fine */
	assert_int_equal(load("aliases = { };", &c, &err), O365_OK);
	assert_null(c.aliases[0].name);
	o365_conf_free(keys, NKEYS, &c);
}

static void
int_range_is_inclusive(void **state)
{
	struct o365_error err;
	struct tconf c;

	(void)state;
	assert_int_equal(load("server = { port = 1; };", &c, &err), O365_OK);
	assert_int_equal(c.port, 1);
	o365_conf_free(keys, NKEYS, &c);
	assert_int_equal(load("server = { port = 65535; };", &c, &err), O365_OK);
	assert_int_equal(c.port, 65535);
	o365_conf_free(keys, NKEYS, &c);
	assert_int_equal(load("server = { port = 65535L; };", &c, &err), O365_OK);
	assert_int_equal(c.port, 65535);
	o365_conf_free(keys, NKEYS, &c);
	assert_int_equal(load("any = 2147483647;", &c, &err), O365_OK);
	assert_int_equal(c.any, 2147483647);
	o365_conf_free(keys, NKEYS, &c);

	refused("server = { port = 0; };", "test.conf:1: server.port: 0 is out of range 1..65535");
	refused("\nserver = {\n port = 65536; };", "test.conf:3: server.port: 65536 is out of range");
	refused("offset = -11;", "test.conf:1: offset: -11 is out of range -10..10");
	refused("offset = 11;", "test.conf:1: offset: 11 is out of range");
	refused("any = 2147483648L;", "test.conf:1: any: 2147483648 is out of range");
}

static void
int_literals_libconfig_would_wrap_are_refused(void **state)
{
	(void)state;
	/* libconfig 1.5 alone stores these as 1 */
	refused("server = { port = 4294967297; };", "test.conf:1: server.port: integer too large");
	refused("server = { port = 0x100000001; };", "test.conf:1: server.port: integer too large");
	refused("any = 2147483648;", "test.conf:1: any: integer too large");
	refused("any = -2147483649;", "test.conf:1: any: integer too large");
	refused("any = 0xFFFFFFFF;", "test.conf:1: any: integer too large");
	refused("any = 0x10000000000000001L;", "test.conf:1: any: integer too large");
	refused("any = 99999999999999999999999;", "test.conf:1: any: integer too large");
	/* leading zeros do not hide the size from the check */
	refused("any = 000000000000000000000000000000000000000000000000000000000000000000000000004294967297;",
	    "test.conf:1: any: integer too large");
	refused("any = 0x000000000000000000000000000000000000000000000000000000000000000000000000100000001;",
	    "test.conf:1: any: integer too large");
	/* the right key is named even when another has the wrapped value */
	refused("any = 0;\noffset = 4294967296;", "test.conf:2: offset: integer too large");
	refused("nodef = \"#\"; // 1\n/* 2 */ any =\n 4294967296; # x\n", "test.conf:3: any:");
}

static void
wrong_types_are_refused(void **state)
{
	(void)state;
	refused("server = { port = \"993\"; };", "test.conf:1: server.port: expected an integer");
	refused("server = { port = 9.5; };", "test.conf:1: server.port: expected an integer");
	refused("server = { host = 5; };", "test.conf:1: server.host: expected a string");
	refused("debug = 1;", "test.conf:1: debug: expected true or false");
	refused("debug = \"yes\";", "test.conf:1: debug: expected true or false");
	refused("mode = 3;", "test.conf:1: mode: expected a string");
	refused("allow = { domains = 1; };", "test.conf:1: allow.domains: expected a string or a list");
	refused("allow = { domains = [ 1, 2 ]; };", "test.conf:1: allow.domains: expected a string");
	refused("allow = {\n domains = ( \"a\",\n { x = 1; } ); };",
	    "test.conf:3: allow.domains: expected a string");
	refused("aliases = \"root\";", "test.conf:1: aliases: expected a group");
	refused("aliases = {\n root = 1; };", "test.conf:2: aliases.root: expected a string");
	refused("aliases = { root = { a = \"b\"; }; };", "test.conf:1: aliases.root: expected a string");
	refused("server = 1;", "test.conf:1: server: expected a group");
	refused("server = { host = \"a\r\nRCPT TO:<x>\"; };",
	    "test.conf:1: server.host: control character in the value");
	refused("aliases = { root = \"a\\tb\"; };", "test.conf:1: aliases.root: control character");
}

static void
unknown_keys_and_groups_are_refused(void **state)
{
	(void)state;
	refused("debug = false;\nport = 993;", "test.conf:2: port: unknown key");
	refused("server = {\n  hots = \"x\"; };", "test.conf:2: server.hots: unknown key");
	refused("imap = { host = \"x\"; };", "test.conf:1: imap: unknown group");
	refused("server = { tls = { x = 1; }; };", "test.conf:1: server.tls: unknown group");
	refused("server = { host = { a = \"b\"; }; };", "test.conf:1: server.host: expected a string");
	refused("password = \"hunter2\";", "test.conf:1: password: unknown key");
	/* names longer than the scanner's name buffer (found by fuzz_conf: it looped) */
	refused("imapFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF = 1;",
	    "test.conf:1: imapFFFF");
}

static void
unknown_key_message_never_quotes_the_value(void **state)
{
	struct o365_error err;
	struct tconf c;

	(void)state;
	assert_int_equal(load("password = \"Sekr1t-marker\";", &c, &err), O365_E_CONFIG);
	assert_null(strstr(err.why, "Sekr1t"));
}

static void
nested_groups_are_walked(void **state)
{
	struct o365_error err;
	struct tconf c;

	(void)state;
	assert_int_equal(load("tls = { client = { cert = \"/etc/o365/c.pem\"; }; };", &c, &err),
	    O365_OK);
	assert_string_equal(c.cert, "/etc/o365/c.pem");
	o365_conf_free(keys, NKEYS, &c);
	assert_int_equal(load("tls = { client = { }; };\ntls2 = 1;", &c, &err), O365_E_CONFIG);
	assert_string_equal(err.why, "test.conf:2: tls2: unknown key");
	refused("tls = {\n client = {\n  cert = \"a\";\n  key = \"b\"; }; };",
	    "test.conf:4: tls.client.key: unknown key");
	refused("tls = { server = { cert = \"x\"; }; };", "test.conf:1: tls.server: unknown group");
	refused("tls = { client = \"x\"; };", "test.conf:1: tls.client: expected a group");
	refused("tls = ( \"x\" );", "test.conf:1: tls: expected a group");
}

static void
bad_enum_names_the_choices(void **state)
{
	struct o365_error err;
	struct tconf c;

	(void)state;
	refused("\n\nmode = \"IMAP\";", "test.conf:3: mode: \"IMAP\" is not one of");
	assert_int_equal(load("mode = \"pop3\";", &c, &err), O365_E_CONFIG);
	assert_non_null(strstr(err.why, "\"imap\", \"smtp\", \"both\""));
}

static void
syntax_errors_name_the_line(void **state)
{
	(void)state;
	refused("debug = true;\nserver = { port = = 1; };\n", "test.conf:2: syntax error: ");
	refused("debug = true;\ndebug = false;\n", "test.conf:2: syntax error: duplicate setting");
	refused("mode = \"unterminated", "test.conf:1: syntax error");
	refused("debug = true;;", "test.conf:1: syntax error");
}

static void
include_is_refused(void **state)
{
	struct o365_error err;
	struct tconf c;

	(void)state;
	refused("debug = true;\n @include \"/etc/hostname\"\n", "test.conf:2: @include: ");
	refused("\t@include \"relative.conf\"\n", "test.conf:1: @include: includes are not allowed");
	/* libconfig does not include from a comment: we do not refuse one there */
	assert_int_equal(load("/*\n@include \"/etc/hostname\"\n*/\nnodef = \"@include\";", &c, &err),
	    O365_OK);
	assert_string_equal(c.nodef, "@include");
	o365_conf_free(keys, NKEYS, &c);
}

static void
errors_free_what_defaults_allocated(void **state)
{
	static const struct tconf zero;
	struct o365_error err;
	struct tconf c;

	(void)state;
	/* the error comes after strings and lists were replaced: all freed */
	assert_int_equal(load("server = { host = \"h\"; };\nallow = { domains = [\"a\"]; };\n"
	    "aliases = { a = \"b\"; };\nmode = \"smtp\";\nnope = 1;", &c, &err), O365_E_CONFIG);
	assert_memory_equal(&c, &zero, sizeof(c));
	assert_non_null(strstr(err.why, "test.conf:5: nope: unknown key"));
	assert_int_equal(o365_conf_load_string(NULL, "x", keys, NKEYS, &c, &err), O365_E_INVAL);
	assert_memory_equal(&c, &zero, sizeof(c));
}

static void
write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static void
files_are_read_and_capped(void **state)
{
	char dir[512], path[600], link[600];
	struct o365_error err;
	struct tconf c;
	char *big;

	(void)state;
	assert_int_equal(o365_test_tmpdir(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/o365.conf", dir);
	snprintf(link, sizeof(link), "%s/link.conf", dir);

	write_file(path, "server = { port = 587; };\nmode = \"smtp\";\n", 41);
	memset(&c, 0, sizeof(c));
	assert_int_equal(o365_conf_load(path, keys, NKEYS, &c, &err), O365_OK);
	assert_int_equal(c.port, 587);
	assert_string_equal(c.mode, "smtp");
	o365_conf_free(keys, NKEYS, &c);

	/* symbolic links are followed (configs under /etc/alternatives) */
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(o365_conf_load(link, keys, NKEYS, &c, &err), O365_OK);
	o365_conf_free(keys, NKEYS, &c);

	write_file(path, "\nserver = { port = 0; };\n", 25);
	assert_int_equal(o365_conf_load(path, keys, NKEYS, &c, &err), O365_E_CONFIG);
	assert_non_null(strstr(err.why, path));
	assert_non_null(strstr(err.why, ":2: server.port:"));

	/* exactly the cap is read (a comment of spaces); one byte more is not */
	assert_non_null(big = malloc(O365_MAX_CONF_FILE + 1));
	memset(big, ' ', O365_MAX_CONF_FILE + 1);
	big[0] = '#';
	big[O365_MAX_CONF_FILE - 1] = '\n';	/* libconfig wants a comment to end */
	write_file(path, big, O365_MAX_CONF_FILE);
	assert_int_equal(o365_conf_load(path, keys, NKEYS, &c, &err), O365_OK);
	o365_conf_free(keys, NKEYS, &c);
	write_file(path, big, O365_MAX_CONF_FILE + 1);
	assert_int_equal(o365_conf_load(path, keys, NKEYS, &c, &err), O365_E_CONFIG);
	assert_non_null(strstr(err.why, "larger than"));
	free(big);

	write_file(path, "debug = true;\0x", 15);
	assert_int_equal(o365_conf_load(path, keys, NKEYS, &c, &err), O365_E_CONFIG);
	assert_non_null(strstr(err.why, "NUL"));

	assert_int_equal(o365_conf_load(dir, keys, NKEYS, &c, &err), O365_E_CONFIG);
	assert_non_null(strstr(err.why, "not a regular file"));

	assert_int_equal(unlink(link), 0);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(o365_conf_load(path, keys, NKEYS, &c, &err), O365_E_IO);
	assert_non_null(strstr(err.why, path));

	/* a FIFO must not block the loader */
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(o365_conf_load(path, keys, NKEYS, &c, &err), O365_E_CONFIG);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults_are_applied_to_an_empty_file),
		cmocka_unit_test(every_type_is_parsed),
		cmocka_unit_test(strlist_takes_a_string_a_list_or_nothing),
		cmocka_unit_test(map_names_take_libconfig_name_characters),
		cmocka_unit_test(int_range_is_inclusive),
		cmocka_unit_test(int_literals_libconfig_would_wrap_are_refused),
		cmocka_unit_test(wrong_types_are_refused),
		cmocka_unit_test(unknown_keys_and_groups_are_refused),
		cmocka_unit_test(unknown_key_message_never_quotes_the_value),
		cmocka_unit_test(nested_groups_are_walked),
		cmocka_unit_test(bad_enum_names_the_choices),
		cmocka_unit_test(syntax_errors_name_the_line),
		cmocka_unit_test(include_is_refused),
		cmocka_unit_test(errors_free_what_defaults_allocated),
		cmocka_unit_test(files_are_read_and_capped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
