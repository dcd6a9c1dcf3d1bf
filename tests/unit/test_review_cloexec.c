/*
 * test_review_cloexec.c: every socket the core opens to a server is
 * close-on-exec, so a host program that forks and execs (in another
 * thread, while we wait for a server) never hands the child our
 * connection: the IMAP/SMTP conn, and libcurl's connection to the token
 * endpoint.  The servers here are bare loopback listeners that accept and
 * never answer; the client's socket is found by its peer address.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "o365/conn.h"
#include "o365/oauth.h"
#include "o365/secret.h"
#include "testutil.h"

/* The descriptor of ours whose peer is 127.0.0.1:port, or -1. */
static int
client_socket_to(unsigned int port)
{
	struct sockaddr_in sa;
	socklen_t sl;
	int fd;

	for (fd = 0; fd < 1024; fd++) {
		sl = sizeof(sa);
		if (getpeername(fd, (struct sockaddr *)&sa, &sl) == 0 && sa.sin_family == AF_INET &&
		    ntohs(sa.sin_port) == port)
			return fd;
	}
	return -1;
}

static void
assert_cloexec(int fd)
{
	int fl;

	assert_true(fd >= 0);
	fl = fcntl(fd, F_GETFD);
	assert_true(fl != -1);
	if (!(fl & FD_CLOEXEC))
		fail_msg("socket %d to the server is not close-on-exec", fd);
}

static void
conn_socket_is_cloexec(void **state)
{
	struct o365_conn *c = NULL;
	struct o365_deadline dl;
	struct o365_error err;
	unsigned int port;
	int lfd;

	(void)state;
	assert_true((lfd = o365_test_tcp_socket(1, &port)) >= 0);
	o365_deadline_in(&dl, 10000);
	assert_int_equal(o365_conn_connect("127.0.0.1", port, &dl, NULL, &c, &err), O365_OK);
	assert_cloexec(client_socket_to(port));
	o365_conn_close(&c);
	assert_int_equal(client_socket_to(port), -1);
	close(lfd);
}

struct token_run {
	unsigned int	 port;
	int		 r;
};

static void *
token_main(void *arg)
{
	struct token_run *t = arg;
	struct o365_secret *cs = NULL;
	struct o365_token *tok = NULL;
	struct o365_deadline dl;
	struct o365_error err;
	char authority[64];
	struct o365_oauth_opts o = {
		.authority = authority, .tenant = "contoso.onmicrosoft.com", .client_id = "client-1",
	};
	struct o365_oauth_request rq = {
		.grant = O365_GRANT_CLIENT_CREDENTIALS, .scope = O365_SCOPE_APP,
	};

	snprintf(authority, sizeof(authority), "https://127.0.0.1:%u", t->port);
	if (o365_secret_dup("not-a-real-secret", 17, &cs) != O365_OK) {
		t->r = O365_E_NOMEM;
		return NULL;
	}
	rq.client_secret = cs;
	o365_deadline_in(&dl, 10000);
	t->r = o365_oauth_token(&o, &rq, &dl, NULL, &tok, NULL, &err);
	o365_token_free(&tok);
	o365_secret_free(&cs);
	return NULL;
}

static void
token_endpoint_socket_is_cloexec(void **state)
{
	struct pollfd pfd;
	struct token_run t = { 0, 1 };
	pthread_t th;
	int lfd, afd;

	(void)state;
	assert_true((lfd = o365_test_tcp_socket(1, &t.port)) >= 0);
	assert_int_equal(pthread_create(&th, NULL, token_main, &t), 0);
	/* libcurl has connected once we can accept; it then waits for a
	 * ServerHello that never comes, so its socket stays open */
	pfd.fd = lfd;
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 10000), 1);
	afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(afd >= 0);
	assert_cloexec(client_socket_to(t.port));
	close(afd);		/* EOF in the handshake ends the request */
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_true(t.r != O365_OK);
	close(lfd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(conn_socket_is_cloexec),
		cmocka_unit_test(token_endpoint_socket_is_cloexec),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
