/*
 * fakeserver.h: run tests/fake/fakeserver.py (a scripted IMAP/SMTP peer) from
 * a C test.  The script language and transcript format are documented at the
 * top of tests/fake/fakeserver.py.
 *
 *	char pki[256];
 *	struct o365_fake f;
 *	char *t;
 *
 *	assert_int_equal(o365_fake_make_pki(pki, sizeof(pki)), 0);	// once per test program
 *	assert_int_equal(o365_fake_start(&f, "S: * OK hi\nC: A1 NOOP\nS: A1 OK\n",
 *	    pki, "server", "implicit", (char *)NULL), 0);
 *	... o365_conn_connect("localhost", f.port, ...) ...
 *	t = o365_fake_finish(&f, 5000);		// after closing the client side
 *	assert_string_equal(t, "TLS TLSv1.3\nC: A1 NOOP\nEOF\n");
 *	free(t);
 *	...
 *	o365_test_rmtree(pki);
 */
#ifndef O365_TEST_FAKESERVER_H
#define O365_TEST_FAKESERVER_H

#include "spawn.h"

struct o365_fake {
	struct o365_proc proc;
	int	port;			/* where it listens */
	char	dir[256];		/* temp dir: script.txt, transcript.txt */
	char	transcript[300];	/* path of the transcript file */
};

/*
 * Write script_text to a temp file and start fakeserver.py on 127.0.0.1.
 * pki_dir/cert_name select the certificate (NULL, NULL for none); tls_mode is
 * "implicit" or "none" (NULL: "none").  The variable part is extra
 * command-line arguments ending with (char *)NULL, e.g.
 * "--tls-max", "1.0", "--host", "::1", "--connections", "2", (char *)NULL.
 * The default lifetime is 60 s ("--lifetime" overrides it).
 * Returns 0 (f->port is set) or -1 (nothing left running or on disk).
 */
int	o365_fake_start(struct o365_fake *f, const char *script_text, const char *pki_dir,
	    const char *cert_name, const char *tls_mode, ...);

/*
 * Wait up to timeout_ms for the server to finish its connections and exit
 * (it is killed after that), then return its transcript as a malloc'd
 * NUL-terminated string (the caller frees it; NULL on error) and remove the
 * temp dir.  Call it after the client closed its side.
 */
char	*o365_fake_finish(struct o365_fake *f, int timeout_ms);

/* Kill the server now and clean up (error paths).  Safe after finish. */
void	 o365_fake_stop(struct o365_fake *f);

/* Make a fresh temp dir holding the test PKI (tests/fake/mkcerts.sh). */
int	 o365_fake_make_pki(char *dir_out, size_t size);

#endif
