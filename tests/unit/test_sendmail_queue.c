/* test_sendmail_queue.c: durable files, envelopes, drops, pickup, locks, aliases. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "spawn.h"
#include "sm.h"

#define QUID 65534	/* nobody: owns the tree in these tests */
#define QGID 65534

struct fx {
	char		dir[512];
	struct sm_queue	q;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct o365_error err;

	if (f == NULL || o365_test_tmpdir(f->dir, sizeof(f->dir)) != 0)
		return -1;
	if (sm_queue_init(f->dir, QUID, QGID, &err) != O365_OK) {
		print_error("%s\n", err.why);
		return -1;
	}
	if (sm_queue_open(&f->q, f->dir, QUID, QGID, &err) != O365_OK)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	sm_queue_close(&f->q);
	o365_test_rmtree(f->dir);
	free(f);
	return 0;
}

/* Names in a directory fd, without "." and "..". */
static int
count_entries(int dirfd, const char *prefix)
{
	DIR *d;
	struct dirent *de;
	int n = 0, fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY);

	assert_true(fd >= 0);
	d = fdopendir(fd);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

static int
in_from(struct sm_in *in, const char *text)
{
	int p[2];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], text, strlen(text)), (ssize_t)strlen(text));
	close(p[1]);
	assert_int_equal(sm_in_init(in, p[0], 0, 4096), O365_OK);
	return p[0];
}

static const struct sm_policy pol = {
	.rewrite = SM_REWRITE_LOCAL, .relay = "relay@contoso.com", .fqdn = "web1.example.com",
	.default_domain = "contoso.com",
};

static void
init_modes_and_idempotence(void **state)
{
	struct fx *f = *state;
	struct o365_error err;
	struct stat st;
	char p[600];

	snprintf(p, sizeof(p), "%s/incoming", f->dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 01733);
	assert_int_equal(st.st_uid, QUID);
	chmod(p, 0777);
	snprintf(p, sizeof(p), "%s/queue", f->dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	/* a second run repairs modes and changes nothing else */
	assert_int_equal(sm_queue_init(f->dir, QUID, QGID, &err), O365_OK);
	snprintf(p, sizeof(p), "%s/incoming", f->dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 01733);
	/* a symlink in place of a subdirectory is refused */
	snprintf(p, sizeof(p), "%s/failed", f->dir);
	assert_int_equal(rmdir(p), 0);
	assert_int_equal(symlink("/etc", p), 0);
	assert_int_not_equal(sm_queue_init(f->dir, QUID, QGID, &err), O365_OK);
	unlink(p);
	assert_int_equal(sm_queue_init(f->dir, QUID, QGID, &err), O365_OK);
}

static void
commit_writes_msg_and_env(void **state)
{
	struct fx *f = *state;
	struct sm_in in;
	struct sm_hdrs h;
	struct sm_env e, back;
	struct o365_error err;
	struct stat st;
	char name[64], buf[512];
	int fd, mfd;
	ssize_t n;

	memset(&e, 0, sizeof(e));
	fd = in_from(&in, "From: root\nTo: root\nSubject: s\n\nbody\n");
	assert_int_equal(sm_hdrs_read(&in, &h), O365_OK);
	assert_int_equal(sm_addrs_add(&e.rcpts, "root", NULL), O365_OK);
	e.uid = 0;
	snprintf(e.user, sizeof(e.user), "root");
	snprintf(e.sender, sizeof(e.sender), "root@web1.example.com");
	assert_int_equal(sm_queue_commit(&f->q, &e, &h, &in, &pol, NULL, &err), O365_OK);
	assert_int_equal(strlen(e.id), SM_ID_LEN);
	/* aliasing: root has no alias and no catch-all: qualified with the relay's domain */
	assert_string_equal(e.rcpts.v[0].addr, "root@contoso.com");
	snprintf(name, sizeof(name), "%s.msg", e.id);
	assert_int_equal(fstatat(f->q.qfd, name, &st, 0), 0);
	assert_int_equal(st.st_uid, QUID);
	assert_int_equal(st.st_mode & 0777, 0600);
	mfd = openat(f->q.qfd, name, O_RDONLY);
	n = read(mfd, buf, sizeof(buf) - 1);
	buf[n] = '\0';
	close(mfd);
	assert_non_null(strstr(buf, "From: \"root@web1.example.com\" <relay@contoso.com>\n"));
	assert_non_null(strstr(buf, "\n\nbody\n"));
	assert_int_equal(sm_queue_read_env(f->q.qfd, e.id, &back, NULL, &err), O365_OK);
	assert_string_equal(back.sender, "root@web1.example.com");
	assert_int_equal(back.rcpts.n, 1);
	assert_int_equal(back.size, e.size);
	assert_int_equal(count_entries(f->q.qfd, ".t"), 0);
	sm_env_free(&back);
	sm_env_free(&e);
	sm_hdrs_free(&h);
	sm_in_free(&in);
	close(fd);
}

static void
full_disk_leaves_nothing(void **state)
{
	struct fx *f = *state;
	struct sm_in in;
	struct sm_hdrs h;
	struct sm_env e;
	struct o365_error err;
	long nth;
	int fd, r;

	/* fail the 1st, then the 2nd write (msg, then env file) */
	for (nth = 1; nth <= 2; nth++) {
		memset(&e, 0, sizeof(e));
		fd = in_from(&in, "Subject: s\n\nbody\n");
		assert_int_equal(sm_hdrs_read(&in, &h), O365_OK);
		assert_int_equal(sm_addrs_add(&e.rcpts, "a@example.org", NULL), O365_OK);
		sm_out_fault(nth, ENOSPC);
		o365_error_clear(&err);
		r = sm_queue_commit(&f->q, &e, &h, &in, &pol, NULL, &err);
		sm_out_fault(0, 0);
		assert_int_equal(r, O365_E_TEMP);
		assert_non_null(strstr(err.why, "No space"));
		assert_int_equal(count_entries(f->q.qfd, ""), 0);
		sm_env_free(&e);
		sm_hdrs_free(&h);
		sm_in_free(&in);
		close(fd);
	}
}

static void
env_unknown_and_malformed_fields(void **state)
{
	struct sm_env e;
	struct o365_error err;
	const char *t = "O365-Sendmail-Queue: 1\nId: 0123456789abcdef0123456789\nFuture-Field: x\n"
	    "Attempts: lots\nnot a field\nRcpt: a@x.org\nRcpt: b@x.org\nSize: 12\n";

	(void)state;
	memset(&e, 0, sizeof(e));
	assert_int_equal(sm_env_parse(&e, t, strlen(t), NULL, &err), O365_OK);
	assert_int_equal(e.rcpts.n, 2);
	assert_int_equal(e.size, 12);
	assert_int_equal(e.attempts, 0);
	sm_env_free(&e);
	/* no version line, or a newer version: refused */
	t = "Rcpt: a@x.org\n";
	assert_int_equal(sm_env_parse(&e, t, strlen(t), NULL, &err), O365_E_PROTO);
	sm_env_free(&e);
	t = "O365-Sendmail-Queue: 2\nRcpt: a@x.org\n";
	assert_int_equal(sm_env_parse(&e, t, strlen(t), NULL, &err), O365_E_PROTO);
	sm_env_free(&e);
	t = "O365-Sendmail-Queue: 1\n";
	assert_int_equal(sm_env_parse(&e, t, strlen(t), NULL, &err), O365_E_PROTO);
	sm_env_free(&e);
}

static void
drop_and_pickup(void **state)
{
	struct fx *f = *state;
	struct sm_in in;
	struct sm_hdrs h;
	struct sm_env e, back;
	struct o365_error err;
	char **ids;
	size_t n;
	int fd;

	memset(&e, 0, sizeof(e));
	fd = in_from(&in, "To: someone@example.org\nSubject: s\n\nbody\n");
	assert_int_equal(sm_hdrs_read(&in, &h), O365_OK);
	assert_int_equal(sm_addrs_add(&e.rcpts, "someone@example.org", NULL), O365_OK);
	e.uid = 4242;		/* a claim: pickup believes the kernel */
	snprintf(e.user, sizeof(e.user), "mallory");
	snprintf(e.sender, sizeof(e.sender), "ceo@example.org");
	assert_int_equal(sm_queue_drop(&f->q, &e, &h, &in, &err), O365_OK);
	assert_int_equal(count_entries(f->q.incfd, "m"), 1);
	sm_env_free(&e);
	sm_hdrs_free(&h);
	sm_in_free(&in);
	close(fd);

	assert_int_equal(sm_queue_pickup(&f->q, &pol, NULL, &err), 1);
	assert_int_equal(count_entries(f->q.incfd, ""), 0);
	assert_int_equal(sm_queue_list(f->q.qfd, &ids, &n, &err), O365_OK);
	assert_int_equal(n, 1);
	assert_int_equal(sm_queue_read_env(f->q.qfd, ids[0], &back, NULL, &err), O365_OK);
	assert_int_equal(back.uid, getuid());	/* the drop's owner */
	assert_string_not_equal(back.user, "mallory");
	assert_string_equal(back.rcpts.v[0].addr, "someone@example.org");
	sm_env_free(&back);
	sm_queue_list_free(ids, n);
}

static void
pickup_skips_a_drop_another_runner_holds(void **state)
{
	struct fx *f = *state;
	struct sm_in in;
	struct sm_hdrs h;
	struct sm_env e;
	struct o365_error err;
	struct dirent *de;
	DIR *d;
	char p[700];
	int fd, held = -1;

	memset(&e, 0, sizeof(e));
	fd = in_from(&in, "Subject: s\n\nbody\n");
	assert_int_equal(sm_hdrs_read(&in, &h), O365_OK);
	assert_int_equal(sm_addrs_add(&e.rcpts, "a@example.org", NULL), O365_OK);
	assert_int_equal(sm_queue_drop(&f->q, &e, &h, &in, &err), O365_OK);
	snprintf(p, sizeof(p), "%s/incoming", f->dir);
	d = opendir(p);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] == 'm')
			held = openat(f->q.incfd, de->d_name, O_RDONLY);
	closedir(d);
	assert_true(held >= 0);
	assert_int_equal(flock(held, LOCK_EX), 0);	/* the other runner */
	assert_int_equal(sm_queue_pickup(&f->q, &pol, NULL, &err), 0);
	assert_int_equal(count_entries(f->q.incfd, "m"), 1);	/* left alone */
	close(held);
	assert_int_equal(sm_queue_pickup(&f->q, &pol, NULL, &err), 1);
	assert_int_equal(count_entries(f->q.incfd, "m"), 0);
	sm_env_free(&e);
	sm_hdrs_free(&h);
	sm_in_free(&in);
	close(fd);
}

static void
pickup_refuses_links_and_specials(void **state)
{
	struct fx *f = *state;
	struct o365_error err;
	char p[700], target[700];
	int fd;

	/* a symlink to a file the submitter cannot read */
	snprintf(p, sizeof(p), "%s/incoming/m%032d", f->dir, 1);
	assert_int_equal(symlink("/etc/shadow", p), 0);
	/* a hard link to another file */
	snprintf(target, sizeof(target), "%s/victim", f->dir);
	fd = open(target, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "O365-Sendmail-Queue: 1\nRcpt: x@evil.org\n\nsecret\n", 48), 48);
	close(fd);
	snprintf(p, sizeof(p), "%s/incoming/m%032d", f->dir, 2);
	assert_int_equal(link(target, p), 0);
	/* a FIFO: opening it must not block */
	snprintf(p, sizeof(p), "%s/incoming/m%032d", f->dir, 3);
	assert_int_equal(mkfifo(p, 0600), 0);
	/* junk names */
	snprintf(p, sizeof(p), "%s/incoming/whatever", f->dir);
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	close(fd);
	assert_int_equal(sm_queue_pickup(&f->q, &pol, NULL, &err), 0);
	assert_int_equal(count_entries(f->q.incfd, ""), 0);
	assert_int_equal(count_entries(f->q.qfd, ""), 0);
	assert_int_equal(access(target, F_OK), 0);	/* the victim is untouched */
}

static void
lock_is_exclusive_and_sees_removal(void **state)
{
	struct fx *f = *state;
	struct sm_in in;
	struct sm_hdrs h;
	struct sm_env e;
	struct o365_error err;
	int fd, a, b;

	memset(&e, 0, sizeof(e));
	fd = in_from(&in, "Subject: s\n\nbody\n");
	assert_int_equal(sm_hdrs_read(&in, &h), O365_OK);
	assert_int_equal(sm_addrs_add(&e.rcpts, "a@example.org", NULL), O365_OK);
	assert_int_equal(sm_queue_commit(&f->q, &e, &h, &in, &pol, NULL, &err), O365_OK);
	assert_int_equal(sm_queue_lock(f->q.qfd, e.id, &a, &err), O365_OK);
	assert_true(a >= 0);
	assert_int_equal(sm_queue_lock(f->q.qfd, e.id, &b, &err), O365_OK);
	assert_int_equal(b, -1);			/* the second runner skips it */
	assert_int_equal(sm_queue_remove(f->q.qfd, e.id, &err), O365_OK);
	close(a);
	assert_int_equal(sm_queue_lock(f->q.qfd, e.id, &b, &err), O365_OK);
	assert_int_equal(b, -1);			/* gone */
	sm_env_free(&e);
	sm_hdrs_free(&h);
	sm_in_free(&in);
	close(fd);
}

static void
sweep_removes_only_old_leftovers(void **state)
{
	struct fx *f = *state;
	struct timespec old[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
	const char *names[] = { ".t0123", "0000000000aaaaaaaaaaaaaaaa.msg", "0000000000bbbbbbbbbbbbbbbb.msg",
	    "0000000000bbbbbbbbbbbbbbbb.env", ".tfresh" };
	size_t i;
	int fd;

	for (i = 0; i < 5; i++) {
		fd = openat(f->q.qfd, names[i], O_WRONLY | O_CREAT, 0600);
		assert_true(fd >= 0);
		close(fd);
		if (i < 4)
			assert_int_equal(utimensat(f->q.qfd, names[i], old, 0), 0);
	}
	/* the temp file and the .msg without .env go; a queued message and a fresh temp stay */
	assert_int_equal(sm_queue_sweep(f->q.qfd, NULL), 2);
	assert_int_equal(count_entries(f->q.qfd, ""), 3);
	assert_int_equal(faccessat(f->q.qfd, "0000000000bbbbbbbbbbbbbbbb.msg", F_OK, 0), 0);
	assert_int_equal(faccessat(f->q.qfd, ".tfresh", F_OK, 0), 0);
}

static void
aliases_resolve(void **state)
{
	struct o365_conf_pair al[] = {
		{ "root", "admin@contoso.com, ops" },
		{ "ops", "ops@contoso.com" },
		{ "www-data", "root" },
		{ "loop", "loop" },
		{ "pipe", "|/bin/evil" },
		{ NULL, NULL },
	};
	struct o365_conf_pair catchall[] = { { "default", "catchall@contoso.com" }, { NULL, NULL } };
	struct sm_policy p = pol;
	struct sm_addrs out = { 0 };
	char path[600], dir[512];
	FILE *fp;

	(void)state;
	p.aliases = al;
	assert_int_equal(sm_resolve_rcpt(&p, "www-data@web1", &out, NULL), O365_OK);
	assert_int_equal(out.n, 2);
	assert_string_equal(out.v[0].addr, "admin@contoso.com");
	assert_string_equal(out.v[1].addr, "ops@contoso.com");
	out.n = 0;
	assert_int_equal(sm_resolve_rcpt(&p, "loop", &out, NULL), O365_OK);
	assert_int_equal(out.n, 1);
	assert_string_equal(out.v[0].addr, "loop@contoso.com");
	out.n = 0;
	assert_int_equal(sm_resolve_rcpt(&p, "pipe", &out, NULL), O365_OK);
	assert_int_equal(out.n, 0);
	out.n = 0;
	assert_int_equal(sm_resolve_rcpt(&p, "bob@example.org", &out, NULL), O365_OK);
	assert_string_equal(out.v[0].addr, "bob@example.org");
	/* catch-all */
	out.n = 0;
	p.aliases = catchall;
	assert_int_equal(sm_resolve_rcpt(&p, "nobody", &out, NULL), O365_OK);
	assert_string_equal(out.v[0].addr, "catchall@contoso.com");
	/* /etc/aliases style file */
	out.n = 0;
	p.aliases = NULL;
	assert_int_equal(o365_test_tmpdir(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/aliases", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("# comment\npostmaster: root\nroot: first@contoso.com,\n  second@contoso.com\n", fp);
	fclose(fp);
	p.aliases_file = path;
	assert_int_equal(sm_resolve_rcpt(&p, "postmaster", &out, NULL), O365_OK);
	assert_int_equal(out.n, 2);
	assert_string_equal(out.v[1].addr, "second@contoso.com");
	o365_test_rmtree(dir);
	sm_addrs_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(init_modes_and_idempotence, setup, teardown),
		cmocka_unit_test_setup_teardown(commit_writes_msg_and_env, setup, teardown),
		cmocka_unit_test_setup_teardown(full_disk_leaves_nothing, setup, teardown),
		cmocka_unit_test(env_unknown_and_malformed_fields),
		cmocka_unit_test_setup_teardown(drop_and_pickup, setup, teardown),
		cmocka_unit_test_setup_teardown(pickup_refuses_links_and_specials, setup, teardown),
		cmocka_unit_test_setup_teardown(pickup_skips_a_drop_another_runner_holds, setup, teardown),
		cmocka_unit_test_setup_teardown(lock_is_exclusive_and_sees_removal, setup, teardown),
		cmocka_unit_test_setup_teardown(sweep_removes_only_old_leftovers, setup, teardown),
		cmocka_unit_test(aliases_resolve),
	};

	if (geteuid() != 0) {
		fprintf(stderr, "test_sendmail_queue needs root (chown to the queue user)\n");
		return 0;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
