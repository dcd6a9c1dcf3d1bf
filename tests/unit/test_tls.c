/* test_tls.c: certificate checks, versions, STARTTLS injection, TLS I/O. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "o365/conn.h"
#include "o365/tls.h"
#include "fakeserver.h"
#include "testutil.h"

struct pki {
	char	dir[256];
	char	ca[320];	/* ca.pem: the test CA */
};

static int
pki_setup(void **state)
{
	static struct pki p;

	if (o365_fake_make_pki(p.dir, sizeof(p.dir)) != 0)
		return -1;
	if ((size_t)snprintf(p.ca, sizeof(p.ca), "%s/ca.pem", p.dir) >= sizeof(p.ca))
		return -1;
	*state = &p;
	return 0;
}

static int
pki_teardown(void **state)
{
	struct pki *p = *state;

	o365_test_rmtree(p->dir);
	return 0;
}

/*
 * Start an implicit-TLS fake server with cert, connect to addr and start TLS
 * for name.  Returns the start_tls result; *c_out is the connection (closed
 * and NULL on failure).  Extra fake server arguments: a NULL-terminated list.
 */
static int
tls_try(struct o365_fake *f, const char *script, const char *pki, const char *cert,
    const char *addr, const char *name, const struct o365_tls_opts *opts,
    const char *extra1, const char *extra2, struct o365_conn **c_out,
    struct o365_error *err)
{
	struct o365_deadline dl;
	struct o365_conn *c = NULL;
	int r;

	*c_out = NULL;
	assert_int_equal(o365_fake_start(f, script, pki, cert, "implicit",
	    "--host", strchr(addr, ':') != NULL ? "::1" : "127.0.0.1",
	    "--lifetime", "30", extra1, extra2, (char *)NULL), 0);
	o365_deadline_in(&dl, 10000);
	if (o365_conn_connect(addr, (unsigned)f->port, &dl, NULL, &c, err) != O365_OK) {
		o365_fake_stop(f);
		fail_msg("connect: %s", err->why);
	}
	o365_error_clear(err);
	r = o365_conn_start_tls(c, opts, name, &dl, NULL, err);
	/* never leave errors behind in a host process's OpenSSL queue */
	assert_int_equal(ERR_peek_error(), 0);
	if (r != O365_OK)
		o365_conn_close(&c);
	*c_out = c;
	return r;
}

static void
expect_line(struct o365_conn *c, const char *want)
{
	struct o365_deadline dl;
	struct o365_error err;
	char *line;
	size_t len;
	int r;

	o365_deadline_in(&dl, 5000);
	if ((r = o365_conn_getline(c, 1000, &line, &len, &dl, &err)) != O365_OK)
		fail_msg("getline: %d %s", r, err.why);
	assert_string_equal(line, want);
}

static void
put(struct o365_conn *c, const char *s)
{
	struct o365_deadline dl;
	struct o365_error err;

	o365_deadline_in(&dl, 5000);
	assert_int_equal(o365_conn_write(c, s, strlen(s), &dl, &err), O365_OK);
}

static char *
finish(struct o365_fake *f)
{
	char *t = o365_fake_finish(f, 10000);

	assert_non_null(t);
	return t;
}

/* --- the good case --------------------------------------------------- */

static void
good_certificate_verifies_and_info_is_filled(void **state)
{
	struct pki *p = *state;
	struct o365_tls_opts opts = { .ca_file = p->ca };
	struct o365_tls_info info;
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;
	char *t;

	/* a stale error left by someone else must not fail our handshake */
	ERR_raise(ERR_LIB_USER, 1);
	assert_int_equal(tls_try(&f, "S: * OK hello\nC: A1 NOOP\nS: A1 OK done\n", p->dir, "server",
	    "127.0.0.1", "localhost", &opts, NULL, NULL, &c, &err), O365_OK);
	assert_true(o365_conn_is_tls(c));
	expect_line(c, "* OK hello");
	put(c, "A1 NOOP\r\n");
	expect_line(c, "A1 OK done");
	assert_int_equal(o365_conn_tls_info(c, &info), O365_OK);
	assert_string_equal(info.version, "TLSv1.3");
	assert_true(strlen(info.cipher) > 0);
	assert_non_null(strstr(info.subject, "CN=localhost"));
	assert_non_null(strstr(info.issuer, "CN=o365-unix test CA"));
	assert_int_equal(strlen(info.not_after), 20);	/* 2026-12-26T01:02:03Z */
	assert_string_equal(info.verify, "ok");
	assert_int_equal(info.chain_len, 2);		/* leaf and test CA */
	o365_conn_close(&c);
	t = finish(&f);
	assert_string_equal(t, "TLS TLSv1.3\nC: A1 NOOP\nEOF\n");
	free(t);
}

static void
tls12_server_and_ip_literals_verify(void **state)
{
	struct pki *p = *state;
	struct o365_tls_opts opts = { .ca_file = p->ca };
	struct o365_tls_info info;
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;
	char *t;

	/* 127.0.0.1 matched against the certificate's iPAddress SAN */
	assert_int_equal(tls_try(&f, "S: * OK v4\n", p->dir, "server", "127.0.0.1", "127.0.0.1",
	    &opts, "--tls-max", "1.2", &c, &err), O365_OK);
	expect_line(c, "* OK v4");
	assert_int_equal(o365_conn_tls_info(c, &info), O365_OK);
	assert_string_equal(info.version, "TLSv1.2");
	o365_conn_close(&c);
	t = finish(&f);
	assert_string_equal(t, "TLS TLSv1.2\nEOF\n");
	free(t);

	if (!o365_test_have_ipv6_loopback())
		return;
	assert_int_equal(tls_try(&f, "S: * OK v6\n", p->dir, "server", "::1", "::1",
	    &opts, NULL, NULL, &c, &err), O365_OK);
	expect_line(c, "* OK v6");
	o365_conn_close(&c);
	free(finish(&f));
}

/* --- certificates that must fail ------------------------------------- */

static void
bad_certificates_fail_with_the_reason(void **state)
{
	static const struct {
		const char *cert, *name, *why;
	} cases[] = {
		{ "wronghost",  "localhost", "hostname mismatch" },
		{ "wronghost",  "127.0.0.1", "IP address mismatch" },
		{ "server",     "imap.wrong.example", "hostname mismatch" },
		{ "expired",    "localhost", "certificate has expired" },
		{ "selfsigned", "localhost", "self-signed certificate" },
		{ "untrusted",  "localhost", "unable to get local issuer certificate" },
	};
	struct pki *p = *state;
	struct o365_tls_opts opts = { .ca_file = p->ca };
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;
	size_t i;
	char *t;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(tls_try(&f, "S: * OK must not be read\n", p->dir, cases[i].cert,
		    "127.0.0.1", cases[i].name, &opts, NULL, NULL, &c, &err), O365_E_TLS);
		assert_null(c);
		assert_int_equal(err.code, O365_E_TLS);
		if (strstr(err.why, cases[i].why) == NULL)
			fail_msg("%s as %s: why is \"%s\", wanted \"%s\"", cases[i].cert,
			    cases[i].name, err.why, cases[i].why);
		assert_non_null(strstr(err.why, cases[i].name));
		t = finish(&f);
		assert_non_null(strstr(t, "TLS-FAIL"));		/* the server saw the alert */
		assert_null(strstr(t, "C: "));
		free(t);
	}
}

/* No ca_file/ca_dir: the system store, which does not know the test CA. */
static void
system_store_does_not_trust_the_test_ca(void **state)
{
	struct pki *p = *state;
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;

	assert_int_equal(tls_try(&f, "S: * OK\n", p->dir, "server", "127.0.0.1", "localhost",
	    NULL, NULL, NULL, &c, &err), O365_E_TLS);
	assert_non_null(strstr(err.why, "unable to get local issuer certificate"));
	o365_fake_stop(&f);
}

/* Under su/sudo the caller controls the environment: it must not add trust. */
static void
ssl_cert_file_in_environment_is_ignored(void **state)
{
	struct pki *p = *state;
	struct o365_tls_opts opts = { 0 };
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;
	int r;

	assert_int_equal(setenv("SSL_CERT_FILE", p->ca, 1), 0);
	assert_int_equal(setenv("SSL_CERT_DIR", p->dir, 1), 0);
	r = tls_try(&f, "S: * OK\n", p->dir, "server", "127.0.0.1", "localhost", &opts,
	    NULL, NULL, &c, &err);
	unsetenv("SSL_CERT_FILE");
	unsetenv("SSL_CERT_DIR");
	assert_int_equal(r, O365_E_TLS);
	assert_non_null(strstr(err.why, "unable to get local issuer certificate"));
	o365_fake_stop(&f);
}

/* ca_dir: an OpenSSL hashed directory (openssl rehash). */
static void
ca_dir_is_used(void **state)
{
	struct pki *p = *state;
	char dir[300], cmd[700];
	char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	struct o365_tls_opts opts = { .ca_dir = dir };
	struct o365_error err;
	struct o365_proc proc;
	struct o365_fake f;
	struct o365_conn *c;
	int status;

	assert_true((size_t)snprintf(dir, sizeof(dir), "%s/hashed", p->dir) < sizeof(dir));
	assert_true((size_t)snprintf(cmd, sizeof(cmd),
	    "mkdir -p '%s' && cp '%s' '%s/' && openssl rehash '%s'", dir, p->ca, dir, dir) <
	    sizeof(cmd));
	assert_int_equal(o365_proc_start(&proc, argv, 0, 0), 0);
	assert_int_equal(o365_proc_wait(&proc, 30000, &status), 0);
	assert_int_equal(status, 0);
	assert_int_equal(tls_try(&f, "S: * OK dir\n", p->dir, "server", "127.0.0.1", "localhost",
	    &opts, NULL, NULL, &c, &err), O365_OK);
	expect_line(c, "* OK dir");
	o365_conn_close(&c);
	free(finish(&f));
}

static void
bad_ca_file_is_a_config_error(void **state)
{
	struct pki *p = *state;
	char missing[300];
	struct o365_tls_opts opts = { .ca_file = missing };
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;

	snprintf(missing, sizeof(missing), "%s/no-such-ca.pem", p->dir);
	assert_int_equal(tls_try(&f, "S: * OK\n", p->dir, "server", "127.0.0.1", "localhost",
	    &opts, NULL, NULL, &c, &err), O365_E_CONFIG);
	assert_non_null(strstr(err.why, "no-such-ca.pem"));
	o365_fake_stop(&f);
}

/* --- protocol versions ----------------------------------------------- */

static void
old_or_too_low_versions_fail(void **state)
{
	struct pki *p = *state;
	struct o365_tls_opts opts = { .ca_file = p->ca };
	struct o365_tls_opts only13 = { .ca_file = p->ca, .min_version = TLS1_3_VERSION };
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;

	/* a TLS 1.0-only server (allowed on its side with SECLEVEL=0) */
	assert_int_equal(tls_try(&f, "S: * OK\n", p->dir, "server", "127.0.0.1", "localhost",
	    &opts, "--tls-max", "1.0", &c, &err), O365_E_TLS);
	assert_non_null(strstr(err.why, "protocol"));
	assert_non_null(strstr(err.why, "TLS 1.2 or newer is required"));
	o365_fake_stop(&f);

	assert_int_equal(tls_try(&f, "S: * OK\n", p->dir, "server", "127.0.0.1", "localhost",
	    &opts, "--tls-max", "1.1", &c, &err), O365_E_TLS);
	assert_non_null(strstr(err.why, "protocol"));
	o365_fake_stop(&f);

	/* min_version 1.3 against a server that stops at 1.2 */
	assert_int_equal(tls_try(&f, "S: * OK\n", p->dir, "server", "127.0.0.1", "localhost",
	    &only13, "--tls-max", "1.2", &c, &err), O365_E_TLS);
	assert_non_null(strstr(err.why, "protocol"));
	assert_non_null(strstr(err.why, "TLS 1.3 is required"));
	o365_fake_stop(&f);
}

static void
version_parse_and_refused_minimum(void **state)
{
	struct pki *p = *state;
	struct o365_tls_opts weak = { .ca_file = p->ca, .min_version = TLS1_VERSION };
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;
	int v = 0;

	assert_int_equal(o365_tls_version_parse("1.2", &v), O365_OK);
	assert_int_equal(v, TLS1_2_VERSION);
	assert_int_equal(o365_tls_version_parse("1.3", &v), O365_OK);
	assert_int_equal(v, TLS1_3_VERSION);
	assert_int_equal(o365_tls_version_parse("1.1", &v), O365_E_CONFIG);
	assert_int_equal(o365_tls_version_parse("1.3 ", &v), O365_E_CONFIG);
	assert_int_equal(o365_tls_version_parse(NULL, &v), O365_E_CONFIG);
	/* no setting lowers the floor below TLS 1.2 */
	assert_int_equal(tls_try(&f, "S: * OK\n", p->dir, "server", "127.0.0.1", "localhost",
	    &weak, NULL, NULL, &c, &err), O365_E_CONFIG);
	o365_fake_stop(&f);
}

/* --- STARTTLS ---------------------------------------------------------- */

static void
starttls_upgrades_the_connection(void **state)
{
	struct pki *p = *state;
	struct o365_tls_opts opts = { .ca_file = p->ca };
	struct o365_deadline dl;
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;
	char *t;

	assert_int_equal(o365_fake_start(&f,
	    "S: * OK [CAPABILITY IMAP4rev1 STARTTLS] ready\n"
	    "C: A1 STARTTLS\n"
	    "S: A1 OK Begin TLS\n"
	    "starttls\n"
	    "C: A2 CAPABILITY\n"
	    "S: * CAPABILITY IMAP4rev1 AUTH=PLAIN\n"
	    "S: A2 OK done\n", p->dir, "server", "none", (char *)NULL), 0);
	o365_deadline_in(&dl, 10000);
	assert_int_equal(o365_conn_connect("localhost", (unsigned)f.port, &dl, NULL, &c, &err),
	    O365_OK);
	assert_false(o365_conn_is_tls(c));
	assert_int_equal(o365_conn_tls_info(c, &(struct o365_tls_info){ 0 }), O365_E_INVAL);
	expect_line(c, "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready");
	put(c, "A1 STARTTLS\r\n");
	expect_line(c, "A1 OK Begin TLS");
	assert_int_equal(o365_conn_start_tls(c, &opts, "localhost", &dl, NULL, &err), O365_OK);
	assert_true(o365_conn_is_tls(c));
	assert_int_equal(o365_conn_start_tls(c, &opts, "localhost", &dl, NULL, &err),
	    O365_E_INVAL);	/* twice is a caller bug, and harmless */
	put(c, "A2 CAPABILITY\r\n");
	expect_line(c, "* CAPABILITY IMAP4rev1 AUTH=PLAIN");
	expect_line(c, "A2 OK done");
	o365_conn_close(&c);
	t = finish(&f);
	assert_string_equal(t, "C: A1 STARTTLS\nTLS TLSv1.3\nC: A2 CAPABILITY\nEOF\n");
	free(t);
}

/* Bytes after the STARTTLS reply in the same packet: refuse, no handshake. */
static void
starttls_injection_is_proto_without_handshake(void **state)
{
	struct pki *p = *state;
	struct o365_tls_opts opts = { .ca_file = p->ca };
	struct o365_deadline dl;
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;
	char *t;

	assert_int_equal(o365_fake_start(&f,
	    "S: 220 fake.example ESMTP\n"
	    "C: STARTTLS\n"
	    "S: 220 2.0.0 go ahead\n"
	    "inject 250 injected in clear\n"
	    "starttls\n", p->dir, "server", "none", (char *)NULL), 0);
	o365_deadline_in(&dl, 10000);
	assert_int_equal(o365_conn_connect("127.0.0.1", (unsigned)f.port, &dl, NULL, &c, &err),
	    O365_OK);
	expect_line(c, "220 fake.example ESMTP");
	put(c, "STARTTLS\r\n");
	expect_line(c, "220 2.0.0 go ahead");
	assert_int_equal(o365_conn_start_tls(c, &opts, "localhost", &dl, NULL, &err),
	    O365_E_PROTO);
	assert_non_null(strstr(err.why, "after its STARTTLS reply"));
	assert_false(o365_conn_is_tls(c));
	/* fail closed: nothing more can be sent in clear */
	assert_int_not_equal(o365_conn_write(c, "EHLO x\r\n", 8, &dl, &err), O365_OK);
	o365_conn_close(&c);
	t = finish(&f);
	assert_string_equal(t, "C: STARTTLS\nEOF\n");	/* no ClientHello ever came */
	free(t);
}

static void
handshake_with_a_silent_server_times_out(void **state)
{
	struct pki *p = *state;
	struct o365_tls_opts opts = { .ca_file = p->ca };
	struct o365_deadline dl;
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;

	assert_int_equal(o365_fake_start(&f, "stall\n", NULL, NULL, "none", (char *)NULL), 0);
	o365_deadline_in(&dl, 5000);
	assert_int_equal(o365_conn_connect("127.0.0.1", (unsigned)f.port, &dl, NULL, &c, &err),
	    O365_OK);
	o365_deadline_in(&dl, 500);
	assert_int_equal(o365_conn_start_tls(c, &opts, "localhost", &dl, NULL, &err),
	    O365_E_TIMEOUT);
	assert_string_equal(err.why, "TLS handshake with localhost timed out");
	assert_int_equal(ERR_peek_error(), 0);
	o365_conn_close(&c);
	o365_fake_stop(&f);
}

static void
plaintext_server_is_a_tls_error(void **state)
{
	struct pki *p = *state;
	struct o365_tls_opts opts = { .ca_file = p->ca };
	struct o365_deadline dl;
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;

	/* port 993 answered by a plaintext IMAP server */
	assert_int_equal(o365_fake_start(&f, "S: * OK plain imap here, not TLS\nstall\n", NULL, NULL,
	    "none", (char *)NULL), 0);
	o365_deadline_in(&dl, 5000);
	assert_int_equal(o365_conn_connect("127.0.0.1", (unsigned)f.port, &dl, NULL, &c, &err),
	    O365_OK);
	assert_int_equal(o365_conn_start_tls(c, &opts, "localhost", &dl, NULL, &err), O365_E_TLS);
	assert_non_null(strstr(err.why, "TLS handshake with localhost"));
	assert_non_null(strstr(err.why, "did not answer in TLS"));
	o365_conn_close(&c);
	o365_fake_stop(&f);
}

/* --- I/O over TLS ----------------------------------------------------- */

/*
 * 60 lines in one write: OpenSSL decrypts a whole record at once, more than
 * one 4 KB read.  The rest sits in SSL_pending while the socket stays quiet
 * (the server stalls): polling the socket first would time out.
 */
static void
lines_buffered_inside_openssl_are_read(void **state)
{
	struct pki *p = *state;
	struct o365_tls_opts opts = { .ca_file = p->ca };
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;
	char script[8192], want[128];
	size_t off = 0;
	int i;

	for (i = 0; i < 60; i++)
		off += (size_t)snprintf(script + off, sizeof(script) - off,
		    "S: * %d EXISTS padding padding padding padding padding padding padding pad\n", i);
	assert_true(off + 10 < sizeof(script));
	memcpy(script + off, "stall\n", 7);
	assert_int_equal(tls_try(&f, script, p->dir, "server", "127.0.0.1", "localhost", &opts,
	    NULL, NULL, &c, &err), O365_OK);
	for (i = 0; i < 60; i++) {
		snprintf(want, sizeof(want),
		    "* %d EXISTS padding padding padding padding padding padding padding pad", i);
		expect_line(c, want);
	}
	assert_int_equal(o365_conn_pending(c), 0);
	o365_conn_close(&c);
	o365_fake_stop(&f);
}

static void
tls_close_mid_line_is_net(void **state)
{
	struct pki *p = *state;
	struct o365_tls_opts opts = { .ca_file = p->ca };
	struct o365_deadline dl;
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;
	char *line;
	size_t len;

	assert_int_equal(tls_try(&f, "S: * OK hi\nS+ A1 OK hal\nclose\n", p->dir, "server",
	    "127.0.0.1", "localhost", &opts, NULL, NULL, &c, &err), O365_OK);
	expect_line(c, "* OK hi");
	o365_deadline_in(&dl, 5000);
	assert_int_equal(o365_conn_getline(c, 100, &line, &len, &dl, &err), O365_E_NET);
	assert_non_null(strstr(err.why, "closed by server"));
	assert_int_equal(ERR_peek_error(), 0);
	o365_conn_close(&c);
	o365_fake_stop(&f);
}

/* SIGPIPE stays at SIG_DFL: a write() in OpenSSL's socket BIO would kill us. */
static void
tls_write_to_closed_peer_has_no_sigpipe(void **state)
{
	struct pki *p = *state;
	struct o365_tls_opts opts = { .ca_file = p->ca };
	struct o365_deadline dl;
	struct o365_error err;
	struct o365_fake f;
	struct o365_conn *c;
	char chunk[16384];
	int i, r = O365_OK;

	assert_true(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
	assert_int_equal(tls_try(&f, "close\n", p->dir, "server", "127.0.0.1", "localhost", &opts,
	    NULL, NULL, &c, &err), O365_OK);
	free(finish(&f));			/* the server is gone */
	memset(chunk, 'x', sizeof(chunk));
	o365_deadline_in(&dl, 10000);
	for (i = 0; i < 200 && r == O365_OK; i++)
		r = o365_conn_write(c, chunk, sizeof(chunk), &dl, &err);
	assert_int_equal(r, O365_E_NET);
	assert_int_equal(ERR_peek_error(), 0);
	o365_conn_close(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(good_certificate_verifies_and_info_is_filled),
		cmocka_unit_test(tls12_server_and_ip_literals_verify),
		cmocka_unit_test(bad_certificates_fail_with_the_reason),
		cmocka_unit_test(system_store_does_not_trust_the_test_ca),
		cmocka_unit_test(ssl_cert_file_in_environment_is_ignored),
		cmocka_unit_test(ca_dir_is_used),
		cmocka_unit_test(bad_ca_file_is_a_config_error),
		cmocka_unit_test(old_or_too_low_versions_fail),
		cmocka_unit_test(version_parse_and_refused_minimum),
		cmocka_unit_test(starttls_upgrades_the_connection),
		cmocka_unit_test(starttls_injection_is_proto_without_handshake),
		cmocka_unit_test(handshake_with_a_silent_server_times_out),
		cmocka_unit_test(plaintext_server_is_a_tls_error),
		cmocka_unit_test(lines_buffered_inside_openssl_are_read),
		cmocka_unit_test(tls_close_mid_line_is_net),
		cmocka_unit_test(tls_write_to_closed_peer_has_no_sigpipe),
	};

	return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
