/* test_sendmail_headers.c: header block, -t, Bcc, From rewriting, stdin dots. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "sm.h"

/* Run text through sm_in (dot_ends as given) and read the header block. */
static int
read_text(const char *text, int dot_ends, struct sm_hdrs *h, char *rest, size_t restsz)
{
	struct sm_in in;
	struct sm_out o;
	int p[2], r, outp[2];
	ssize_t n;

	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], text, strlen(text)), (ssize_t)strlen(text));
	close(p[1]);
	assert_int_equal(sm_in_init(&in, p[0], dot_ends, 16), O365_OK);	/* tiny: pieces split */
	r = sm_hdrs_read(&in, h);
	if (r == O365_OK && rest != NULL) {
		assert_int_equal(pipe(outp), 0);
		sm_out_init(&o, outp[1]);
		assert_int_equal(sm_hdrs_write(h, &o), O365_OK);
		assert_int_equal(sm_copy_body(&in, &o, 1 << 20), 0);
		assert_int_equal(sm_out_flush(&o), O365_OK);
		close(outp[1]);
		n = read(outp[0], rest, restsz - 1);
		assert_true(n >= 0);
		rest[n] = '\0';
		close(outp[0]);
	}
	sm_in_free(&in);
	close(p[0]);
	return r;
}

static void
addresses(void **state)
{
	struct sm_addrs a = { 0 };
	const char *s = "\"Doe, John\" <john@example.com>, bare@example.com (Bare Comment),\r\n"
	    " undisclosed-recipients:;, Team: a@x.org, \"q\\\"x\" <b@x.org>;, <@r1,@r2:route@x.org>, root";

	(void)state;
	assert_int_equal(sm_addrs_parse(&a, s, strlen(s)), O365_OK);
	assert_int_equal(a.n, 6);
	assert_string_equal(a.v[0].addr, "john@example.com");
	assert_string_equal(a.v[0].name, "Doe, John");
	assert_string_equal(a.v[1].addr, "bare@example.com");
	assert_string_equal(a.v[1].name, "Bare Comment");
	assert_string_equal(a.v[2].addr, "a@x.org");
	assert_string_equal(a.v[3].addr, "b@x.org");
	assert_string_equal(a.v[4].addr, "route@x.org");
	assert_string_equal(a.v[5].addr, "root");
	sm_addrs_free(&a);
}

static void
address_length_limit(void **state)
{
	struct sm_addrs a = { 0 };
	char addr[O365_MAX_ADDRESS + 2];

	(void)state;
	memset(addr, 'a', sizeof(addr) - 1);
	addr[O365_MAX_ADDRESS] = '\0';			/* at the limit */
	assert_int_equal(sm_addrs_parse(&a, addr, strlen(addr)), O365_OK);
	addr[O365_MAX_ADDRESS] = 'a';
	addr[O365_MAX_ADDRESS + 1] = '\0';		/* one over */
	assert_int_equal(sm_addrs_parse(&a, addr, strlen(addr)), O365_E_TOOLONG);
	sm_addrs_free(&a);
}

static void
t_recipients_folded_and_bcc_removed(void **state)
{
	struct sm_hdrs h;
	struct sm_addrs rc = { 0 };
	char out[4096];

	(void)state;
	assert_int_equal(read_text("To: a@x.org,\n\tb@x.org\nCc: C <c@x.org>\nBcc: secret@x.org\n"
	    "Subject: hi\n\nbody\n", 0, &h, NULL, 0), O365_OK);
	assert_int_equal(h.n, 4);
	assert_int_equal(sm_hdrs_recipients(&h, &rc), O365_OK);
	assert_int_equal(rc.n, 4);
	assert_string_equal(rc.v[1].addr, "b@x.org");
	assert_string_equal(rc.v[3].addr, "secret@x.org");
	sm_hdrs_drop_bcc(&h);
	sm_hdrs_free(&h);
	sm_addrs_free(&rc);

	assert_int_equal(read_text("To: a@x.org\nBcc: secret@x.org,\n  other@x.org\nSubject: hi\n\nbody\n",
	    0, &h, NULL, 0), O365_OK);
	sm_hdrs_drop_bcc(&h);
	sm_hdrs_free(&h);
	/* the bytes written carry no Bcc, folded lines included */
	{
		struct sm_in in;
		struct sm_out o;
		int p[2], q[2];
		ssize_t n;
		const char *t = "To: a@x.org\nBcc: secret@x.org,\n  other@x.org\nSubject: hi\n\nbody\n";

		assert_int_equal(pipe(p), 0);
		assert_int_equal(write(p[1], t, strlen(t)), (ssize_t)strlen(t));
		close(p[1]);
		assert_int_equal(sm_in_init(&in, p[0], 0, 4096), O365_OK);
		assert_int_equal(sm_hdrs_read(&in, &h), O365_OK);
		sm_hdrs_drop_bcc(&h);
		assert_int_equal(pipe(q), 0);
		sm_out_init(&o, q[1]);
		assert_int_equal(sm_hdrs_write(&h, &o), O365_OK);
		assert_int_equal(sm_copy_body(&in, &o, 1 << 20), 0);
		assert_int_equal(sm_out_flush(&o), O365_OK);
		close(q[1]);
		n = read(q[0], out, sizeof(out) - 1);
		out[n] = '\0';
		assert_string_equal(out, "To: a@x.org\nSubject: hi\n\nbody\n");
		close(q[0]);
		close(p[0]);
		sm_in_free(&in);
		sm_hdrs_free(&h);
	}
}

static void
resent_block_wins(void **state)
{
	struct sm_hdrs h;
	struct sm_addrs rc = { 0 };

	(void)state;
	assert_int_equal(read_text("Resent-From: r@x.org\nResent-To: new@x.org\nResent-Bcc: hid@x.org\n"
	    "Resent-From: old@x.org\nResent-To: older@x.org\nTo: orig@x.org\n\nb\n", 0, &h, NULL, 0),
	    O365_OK);
	assert_int_equal(sm_hdrs_recipients(&h, &rc), O365_OK);
	assert_int_equal(rc.n, 2);
	assert_string_equal(rc.v[0].addr, "new@x.org");
	assert_string_equal(rc.v[1].addr, "hid@x.org");
	sm_hdrs_free(&h);
	sm_addrs_free(&rc);
}

static void
dot_line_ends_input_unless_i(void **state)
{
	struct sm_hdrs h;
	char out[1024];

	(void)state;
	assert_int_equal(read_text("Subject: a\n\nline\n.\nafter\n", 1, &h, out, sizeof(out)), O365_OK);
	assert_string_equal(out, "Subject: a\n\nline\n");
	sm_hdrs_free(&h);
	assert_int_equal(read_text("Subject: a\n\nline\n.\nafter\n", 0, &h, out, sizeof(out)), O365_OK);
	assert_string_equal(out, "Subject: a\n\nline\n.\nafter\n");
	sm_hdrs_free(&h);
	/* "..x" and ". " are not the end; CRLF dot is */
	assert_int_equal(read_text("S: a\r\n\r\n..x\r\n. \r\n.\r\nno\r\n", 1, &h, out, sizeof(out)), O365_OK);
	assert_string_equal(out, "S: a\r\n\n..x\r\n. \r\n");
	sm_hdrs_free(&h);
}

static void
no_header_block_and_mbox_line(void **state)
{
	struct sm_hdrs h;
	char out[1024];

	(void)state;
	assert_int_equal(read_text("just a body line\nsecond\n", 0, &h, out, sizeof(out)), O365_OK);
	assert_int_equal(h.n, 0);
	assert_string_equal(out, "\njust a body line\nsecond\n");
	sm_hdrs_free(&h);
	assert_int_equal(read_text("From root Thu Nov 26 01:00:00 2026\nSubject: x\n\nb\n", 0, &h, out,
	    sizeof(out)), O365_OK);
	assert_string_equal(out, "Subject: x\n\nb\n");
	sm_hdrs_free(&h);
}

static void
complete_adds_missing(void **state)
{
	struct sm_hdrs h;
	struct sm_ident id = { "alice", "Alice \"A\" Liddell", NULL, "web1.example.com" };
	char *v;

	(void)state;
	assert_int_equal(read_text("Subject: x\n\nb\n", 0, &h, NULL, 0), O365_OK);
	assert_int_equal(sm_hdrs_complete(&h, &id), O365_OK);
	assert_true(sm_hdrs_find(&h, "Date", 0) >= 0);
	assert_true(sm_hdrs_find(&h, "Message-ID", 0) >= 0);
	v = sm_hdr_value(&h.v[sm_hdrs_find(&h, "From", 0)]);
	assert_string_equal(v, "\"Alice \\\"A\\\" Liddell\" <alice@web1.example.com>");
	free(v);
	sm_hdrs_free(&h);
	/* present ones are kept, not doubled */
	assert_int_equal(read_text("From: x@y.org\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
	    "Message-ID: <a@b>\n\nb\n", 0, &h, NULL, 0), O365_OK);
	assert_int_equal(sm_hdrs_complete(&h, &id), O365_OK);
	assert_int_equal(h.n, 3);
	sm_hdrs_free(&h);
}

static char *
field(struct sm_hdrs *h, const char *name)
{
	long i = sm_hdrs_find(h, name, 0);

	return i < 0 ? NULL : sm_hdr_value(&h->v[i]);
}

static void
from_rewriting(void **state)
{
	struct sm_hdrs h;
	char *v;
	int rw;

	(void)state;
	/* local From: rewritten, original visible, no Reply-To to a local box */
	assert_int_equal(read_text("From: Cron Daemon <root@web1>\nTo: root\n\nb\n", 0, &h, NULL, 0), O365_OK);
	assert_int_equal(sm_hdrs_rewrite(&h, SM_REWRITE_LOCAL, "relay@contoso.com", "web1.example.com",
	    &rw), O365_OK);
	assert_int_equal(rw, 1);
	v = field(&h, "From");
	assert_string_equal(v, "\"Cron Daemon (root@web1)\" <relay@contoso.com>");
	free(v);
	assert_null(field(&h, "Reply-To"));
	v = field(&h, "To");
	assert_string_equal(v, "root@web1.example.com");	/* bare address qualified */
	free(v);
	sm_hdrs_free(&h);

	/* remote From kept with "local" */
	assert_int_equal(read_text("From: dev@contoso.com\n\nb\n", 0, &h, NULL, 0), O365_OK);
	assert_int_equal(sm_hdrs_rewrite(&h, SM_REWRITE_LOCAL, "relay@contoso.com", "web1.example.com",
	    &rw), O365_OK);
	assert_int_equal(rw, 0);
	sm_hdrs_free(&h);

	/* "always": rewritten, Reply-To added for the remote author */
	assert_int_equal(read_text("From: Dev <dev@example.org>\n\nb\n", 0, &h, NULL, 0), O365_OK);
	assert_int_equal(sm_hdrs_rewrite(&h, SM_REWRITE_ALWAYS, "relay@contoso.com", "web1.example.com",
	    &rw), O365_OK);
	assert_int_equal(rw, 1);
	v = field(&h, "Reply-To");
	assert_string_equal(v, "dev@example.org");
	free(v);
	sm_hdrs_free(&h);

	/* an existing Reply-To is kept */
	assert_int_equal(read_text("From: dev@example.org\nReply-To: list@example.org\n\nb\n", 0, &h, NULL,
	    0), O365_OK);
	assert_int_equal(sm_hdrs_rewrite(&h, SM_REWRITE_ALWAYS, "relay@contoso.com", "w.example.com",
	    &rw), O365_OK);
	v = field(&h, "Reply-To");
	assert_string_equal(v, "list@example.org");
	free(v);
	sm_hdrs_free(&h);

	/* "never" */
	assert_int_equal(read_text("From: root@web1\n\nb\n", 0, &h, NULL, 0), O365_OK);
	assert_int_equal(sm_hdrs_rewrite(&h, SM_REWRITE_NEVER, "relay@contoso.com", "web1.example.com",
	    &rw), O365_OK);
	assert_int_equal(rw, 0);
	sm_hdrs_free(&h);
}

static void
local_addresses(void **state)
{
	(void)state;
	assert_true(sm_addr_is_local("root", "web1.example.com"));
	assert_true(sm_addr_is_local("root@web1", "web1.example.com"));
	assert_true(sm_addr_is_local("root@WEB1.example.com", "web1.example.com"));
	assert_true(sm_addr_is_local("root@localhost", "web1.example.com"));
	assert_true(sm_addr_is_local("root@localhost.localdomain", "web1.example.com"));
	assert_false(sm_addr_is_local("root@example.com", "web1.example.com"));
	assert_false(sm_addr_is_local("root@web1.example.com.evil.org", "web1.example.com"));
}

static void
header_limits(void **state)
{
	struct sm_hdrs h;
	struct sm_in in;
	char *big;
	int p[2];
	pid_t pid;
	size_t n = SM_MAX_HEADER_LINE + 10;

	(void)state;
	big = malloc(n + 1);
	assert_non_null(big);
	memcpy(big, "X-Long: ", 8);
	memset(big + 8, 'a', n - 9);
	big[n - 1] = '\n';
	big[n] = '\0';
	assert_int_equal(pipe(p), 0);
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		(void)!write(p[1], big, n);
		_exit(0);
	}
	close(p[1]);
	assert_int_equal(sm_in_init(&in, p[0], 0, 65536 * 2), O365_OK);
	assert_int_equal(sm_hdrs_read(&in, &h), O365_E_TOOLONG);
	sm_hdrs_free(&h);
	sm_in_free(&in);
	close(p[0]);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(addresses),
		cmocka_unit_test(address_length_limit),
		cmocka_unit_test(t_recipients_folded_and_bcc_removed),
		cmocka_unit_test(resent_block_wins),
		cmocka_unit_test(dot_line_ends_input_unless_i),
		cmocka_unit_test(no_header_block_and_mbox_line),
		cmocka_unit_test(complete_adds_missing),
		cmocka_unit_test(from_rewriting),
		cmocka_unit_test(local_addresses),
		cmocka_unit_test(header_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
