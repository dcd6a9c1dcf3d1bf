/*
 * sm.h: o365-sendmail's internal interfaces (front end only; not installed).
 *
 * args.c     command line -> struct sm_opts (pure)
 * headers.c  RFC 5322 header block: read, -t recipients, Bcc removal,
 *            missing Date/Message-ID/From, From rewriting, address lists
 * intake.c   stdin reader (dot handling), buffered writer, durable files
 * queue.c    spool layout, ids, envelope files, drops, pickup, locks, -bp
 * config.c   /etc/o365/sendmail.conf through o365_conf_load
 * relay.c    the queue runner (policy: retry, fail, bounce)
 * cli.c      the modes both programs share (submission, -bs, -bv, -bp, control)
 * front.c    o365-sendmail: intake without OpenSSL; execs the runner for the rest
 * main.c     o365-sendmail-runner(-oauth): every mode, network ones included
 * xoauth.c  xoauth2 relay identity; xoauth_store.c the parts with the token store
 * xoauth_child.c  those parts for the runner without libcurl: a child per token
 *            loads tokmod.c (o365-sendmail-oauth.so, the token store)
 */
#ifndef O365_SM_H
#define O365_SM_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "o365/conf.h"
#include "o365/err.h"
#include "o365/limits.h"
#include "o365/log.h"

#define SM_MAX_HEADERS		(1024 * 1024)	/* a header block; sendmail's default is 32 KB */
#define SM_MAX_HEADER_LINE	(64 * 1024)	/* one physical header line */
#define SM_MAX_MESSAGE		(160L * 1024 * 1024)	/* Exchange Online advertises SIZE 157286400 */
#define SM_MAX_RCPTS		1000	/* Exchange takes 500 per message by default */
#define SM_MAX_ENV		(256 * 1024)	/* an envelope block or .env file */
#define SM_ID_LEN		26	/* 10 hex digits of time + 16 of randomness */
#define SM_DEFAULT_CONF		"/etc/o365/sendmail.conf"

/* ---- command line (args.c) ---- */

enum sm_mode {
	SM_MODE_SEND,		/* -bm, the default */
	SM_MODE_LIST,		/* -bp, mailq */
	SM_MODE_SMTP,		/* -bs */
	SM_MODE_VERIFY,		/* -bv */
	SM_MODE_RUNQ,		/* -q, --queue-runner */
	SM_MODE_NEWALIASES,	/* -bi, newaliases: nothing to build */
	SM_MODE_INIT,		/* --init [DIR] */
	SM_MODE_CHECK,		/* --check */
	SM_MODE_OAUTH_LOGIN,	/* --oauth-login: device code sign-in (xoauth.c) */
	SM_MODE_HELP,
	SM_MODE_VERSION,
	SM_MODE_CONTROL,	/* --hold, --release, --delete, --retry ID|ALL */
	SM_MODE_FAILED,		/* --failed: list failed/ */
	SM_MODE_PROBE,		/* --probe: connect, show TLS, try AUTH, send nothing */
	SM_MODE_TEST_SEND,	/* --test-send ADDR: one test message, with the transcript */
};

enum sm_deliv {
	SM_DELIV_BACKGROUND,	/* default, -odb: start delivery, do not wait */
	SM_DELIV_INTERACTIVE,	/* -odi: wait for the delivery attempt */
	SM_DELIV_QUEUE,		/* -odq: only queue */
};

struct sm_opts {
	enum sm_mode	 mode;
	enum sm_deliv	 deliv;
	int		 from_headers;	/* -t */
	int		 ignore_dots;	/* -i, -oi */
	int		 verbose;	/* -v */
	int		 force;		/* -q: whatever the backoff (--queue-runner: due ones only) */
	int		 background;	/* --background-runner (internal, started by -odb): quiet */
	const char	*sender;	/* -f / -r */
	const char	*fullname;	/* -F */
	const char	*config;	/* -C */
	const char	*init_dir;	/* --init DIR */
	int		 ctl_op;	/* SM_MODE_CONTROL: enum sm_ctl_op (control.h) */
	const char	*ctl_id;	/* SM_MODE_CONTROL: a queue id or "ALL" */
	const char	*test_rcpt;	/* SM_MODE_TEST_SEND: the address */
	char *const	*rcpts;		/* into argv */
	size_t		 nrcpt;
};

/*
 * Parse argv like sendmail: options up to the first non-option or "--",
 * everything after is a recipient (a recipient starting with '-' is never an
 * option).  argv[0]'s base name "mailq" means -bp, "newaliases" -bi.
 * Returns 0, or -1 with a one-line reason in why (exit with EX_USAGE).
 */
int	sm_args_parse(int argc, char *const argv[], struct sm_opts *o, char *why, size_t whysz);

/* ---- addresses and headers (headers.c) ---- */

struct sm_addr {
	char	addr[O365_MAX_ADDRESS + 1];	/* addr-spec, without <> */
	char	name[256];			/* display name or comment, unquoted; "" */
};

struct sm_addrs {
	struct sm_addr	*v;
	size_t		 n, cap;
};

/* Append the addresses of an RFC 5322 address-list (groups, comments, quoted
 * strings, obsolete routes).  O365_E_TOOLONG (an address over the cap or too
 * many), O365_E_NOMEM.  Unparsable pieces are skipped. */
int	sm_addrs_parse(struct sm_addrs *a, const char *s, size_t n) O365_MUST_CHECK;
int	sm_addrs_add(struct sm_addrs *a, const char *addr, const char *name) O365_MUST_CHECK;
void	sm_addrs_free(struct sm_addrs *a);

struct sm_hdr {
	char	*text;		/* the raw field, folded lines included, with its line ends */
	size_t	 len;
	size_t	 namelen;	/* bytes before ':' */
	int	 drop;		/* not written out */
};

struct sm_hdrs {
	struct sm_hdr	*v;
	size_t		 n, cap;
	size_t		 total;		/* bytes held */
	int		 body_sep;	/* the input had a blank line after the headers */
	char		*body_first;	/* a first body line read while looking for headers */
	size_t		 body_first_len;
};

struct sm_in;
struct sm_out;

/* Read the header block from in (stops after the blank line, at the first
 * line that is not a header, or at EOF / the dot line).  A leading mbox
 * "From " line is dropped.  O365_E_TOOLONG past SM_MAX_HEADERS, O365_E_IO. */
int	sm_hdrs_read(struct sm_in *in, struct sm_hdrs *h) O365_MUST_CHECK;

/* The unfolded value of the i-th field (without the name and ':'), malloc'd. */
char	*sm_hdr_value(const struct sm_hdr *f);

/* First index >= from of a field named name (case-insensitive), or -1. */
long	sm_hdrs_find(const struct sm_hdrs *h, const char *name, size_t from);

/* Add a field "Name: value\n" at the end (or at the front when front). */
int	sm_hdrs_add(struct sm_hdrs *h, int front, const char *fmt, ...) O365_PRINTF(3, 4) O365_MUST_CHECK;

/* -t: recipients from To/Cc/Bcc, or from the first Resent-* block when it has
 * Resent-To/Cc/Bcc.  Appends to rc. */
int	sm_hdrs_recipients(const struct sm_hdrs *h, struct sm_addrs *rc) O365_MUST_CHECK;

/* Mark Bcc and Resent-Bcc dropped. */
void	sm_hdrs_drop_bcc(struct sm_hdrs *h);

struct sm_ident {
	const char	*user;		/* login name of the submitting uid */
	const char	*fullname;	/* -F, else the GECOS name, may be NULL */
	const char	*sender;	/* -f, may be NULL */
	const char	*fqdn;		/* this host */
};

/* Add Date, Message-ID and From when missing. */
int	sm_hdrs_complete(struct sm_hdrs *h, const struct sm_ident *id) O365_MUST_CHECK;

enum sm_rewrite { SM_REWRITE_LOCAL, SM_REWRITE_ALWAYS, SM_REWRITE_NEVER };

/* Non-zero when addr has no domain or its domain names this host. */
int	sm_addr_is_local(const char *addr, const char *fqdn);

/*
 * Exchange Online only takes mail From the authenticated mailbox: replace
 * From with "Display (orig@addr)" <relay> per mode, add Reply-To with the
 * original when it is a remote address and none is there, and qualify bare
 * addresses in From/To/Cc with fqdn.  *rewritten set when From changed.
 */
int	sm_hdrs_rewrite(struct sm_hdrs *h, enum sm_rewrite mode, const char *relay,
	    const char *fqdn, int *rewritten) O365_MUST_CHECK;

/* Write the fields (not dropped) and the blank line, then body_first. */
int	sm_hdrs_write(const struct sm_hdrs *h, struct sm_out *out) O365_MUST_CHECK;
void	sm_hdrs_free(struct sm_hdrs *h);

/* RFC 5322 date of t in local time: "Thu, 26 Nov 2026 01:20:07 +0000". */
int	sm_rfc5322_date(time_t t, char *buf, size_t size);

/* ---- stdin reader and file writer (intake.c) ---- */

struct sm_in {
	int		 fd;
	int		 dot_ends;	/* a line "." ends the input (no -i) */
	int		 at_bol;
	int		 eof;		/* no more input (EOF or the dot line) */
	int		 err;		/* errno of a failed read */
	unsigned char	*buf;
	size_t		 off, len, cap;
	off_t		 total;
};

/* in reads fd; cap is the buffer size (>= 2). */
int	sm_in_init(struct sm_in *in, int fd, int dot_ends, size_t cap) O365_MUST_CHECK;
void	sm_in_free(struct sm_in *in);

/*
 * The next piece of input: a whole line with its LF, or max bytes of a longer
 * line (*bol says whether it starts a line).  1 and *p, *len (valid until the
 * next call), 0 at the end, O365_E_IO on a read error (in->err).
 */
int	sm_in_piece(struct sm_in *in, size_t max, const char **p, size_t *len, int *bol) O365_MUST_CHECK;

struct sm_out {
	int		 fd;
	int		 err;		/* errno of the first failed write */
	int		 saw8bit;	/* a byte >= 0x80 went through */
	unsigned char	 buf[65536];
	size_t		 len;
	off_t		 total;
};

void	sm_out_init(struct sm_out *o, int fd);
int	sm_out_write(struct sm_out *o, const void *p, size_t n) O365_MUST_CHECK;
int	sm_out_printf(struct sm_out *o, const char *fmt, ...) O365_PRINTF(2, 3) O365_MUST_CHECK;
int	sm_out_flush(struct sm_out *o) O365_MUST_CHECK;

/* Copy the rest of in to out (body), at most limit bytes in total on out
 * (O365_E_TOOLONG past it). */
int	sm_copy_body(struct sm_in *in, struct sm_out *out, off_t limit) O365_MUST_CHECK;

/* Fault injection for tests: fail the n-th write(2) of sm_out with errno e
 * (ENOSPC); from the environment O365_SENDMAIL_FAULT="write:N:ENOSPC" is
 * honoured only by test builds. */
void	sm_out_fault(long nth, int e);

/*
 * A durable file: created as dir/.tNAME (O_CREAT|O_EXCL|O_NOFOLLOW, mode),
 * written, then sm_file_commit() fsyncs, renames to dir/NAME and fsyncs the
 * directory; sm_file_abort() unlinks the temporary file.
 */
struct sm_file {
	int	 dirfd;
	int	 fd;
	int	 use_syncfs;	/* the directory cannot be opened for fsync (incoming/) */
	char	 tmp[96];
	char	 name[96];
};
int	sm_file_create(struct sm_file *f, int dirfd, const char *name, mode_t mode,
	    struct o365_error *err) O365_MUST_CHECK;
int	sm_file_commit(struct sm_file *f, struct o365_error *err) O365_MUST_CHECK;
void	sm_file_abort(struct sm_file *f);

/* 2*n hex digits of getrandom() bytes into out (size >= 2n+1). */
int	sm_random_hex(char *out, size_t nbytes) O365_MUST_CHECK;

/* This host's name, fully qualified when the resolver knows it. */
int	sm_fqdn(char *buf, size_t size);

/* ---- queue (queue.c) ---- */

struct sm_env {
	int		 version;
	char		 id[SM_ID_LEN + 1];
	uid_t		 uid;
	char		 user[64];
	char		 sender[O365_MAX_ADDRESS + 1];	/* claimed (-f) or user@host */
	long long	 created, next_try;
	int		 attempts;
	int		 bounce;		/* this is a bounce: never bounce it */
	int		 eightbit;		/* the message holds 8-bit bytes */
	int		 held;			/* on hold (SendAsDenied, the admin): no automatic try */
	off_t		 size;
	char		 last_error[512];
	struct sm_addrs	 rcpts;
};

void	sm_env_free(struct sm_env *e);

/* Write the envelope as Field: value lines to out. */
int	sm_env_write(const struct sm_env *e, struct sm_out *out) O365_MUST_CHECK;

/* Parse one "Field: value" line into e (unknown fields ignored).  O365_E_PROTO
 * for a malformed line, which the caller logs and skips. */
int	sm_env_line(struct sm_env *e, const char *line, size_t len) O365_MUST_CHECK;

/* Parse a whole envelope text (lines up to a blank line or the end). */
int	sm_env_parse(struct sm_env *e, const char *text, size_t len, const struct o365_log *lg,
	    struct o365_error *err) O365_MUST_CHECK;

struct sm_queue {
	char	 dir[512];
	int	 rootfd, incfd, qfd, failfd;
	uid_t	 quid;		/* the queue user */
	gid_t	 qgid;
};

/* Open the existing tree under dir (only the parts this caller can open:
 * incoming/ for everyone, queue/ and failed/ for root and the queue user). */
int	sm_queue_open(struct sm_queue *q, const char *dir, uid_t quid, gid_t qgid,
	    struct o365_error *err) O365_MUST_CHECK;
void	sm_queue_close(struct sm_queue *q);

/* --init: create dir, incoming (1733), queue and failed (0700) owned by the
 * queue user, fixing owners and modes of what exists.  Idempotent. */
int	sm_queue_init(const char *dir, uid_t quid, gid_t qgid, struct o365_error *err) O365_MUST_CHECK;

/* A new queue id. */
int	sm_queue_newid(char id[SM_ID_LEN + 1]) O365_MUST_CHECK;

/* Policy applied when a message enters queue/ (root intake, pickup). */
struct sm_policy {
	enum sm_rewrite		 rewrite;
	const char		*relay;		/* from.address; NULL: no rewriting */
	const char		*fqdn;
	const struct o365_conf_pair *aliases;	/* NULL-name-terminated, may be NULL */
	const char		*aliases_file;	/* /etc/aliases style, may be NULL */
	const char		*default_domain;	/* qualify unresolved bare recipients */
};

/* Resolve one recipient through aliases (catch-all "*" or "default"), then
 * qualify; appends the results (an alias may list several) to out. */
int	sm_resolve_rcpt(const struct sm_policy *p, const char *rcpt, struct sm_addrs *out,
	    const struct o365_log *lg) O365_MUST_CHECK;

/*
 * Root intake and pickup: write and fsync <id>.msg from hdrs + the rest of
 * in and <id>.env, rename both (.env last: the commit point), then one
 * fsync of queue/; both owned by the queue user.  e->rcpts are resolved
 * through p first.  O365_E_IO with err->why; ENOSPC / EDQUOT give
 * O365_E_TEMP.  Nothing is left behind on failure; after a crash, at most
 * a half pair that is never delivered and that sm_queue_sweep removes.
 */
int	sm_queue_commit(struct sm_queue *q, struct sm_env *e, struct sm_hdrs *h,
	    struct sm_in *in, const struct sm_policy *p, const struct o365_log *lg,
	    struct o365_error *err) O365_MUST_CHECK;

/* Unprivileged intake: one drop file in incoming/ (envelope block, blank line,
 * message), written durably under an unguessable name. */
int	sm_queue_drop(struct sm_queue *q, const struct sm_env *e, struct sm_hdrs *h,
	    struct sm_in *in, struct o365_error *err) O365_MUST_CHECK;

/* Move every complete drop in incoming/ into queue/ (root).  Returns the
 * number moved or an error; bad drops are logged and removed. */
int	sm_queue_pickup(struct sm_queue *q, const struct sm_policy *p, const struct o365_log *lg,
	    struct o365_error *err) O365_MUST_CHECK;

/* Read <id>.env from dirfd. */
int	sm_queue_read_env(int dirfd, const char *id, struct sm_env *e, const struct o365_log *lg,
	    struct o365_error *err) O365_MUST_CHECK;

/* Replace <id>.env durably. */
int	sm_queue_write_env(int dirfd, const struct sm_env *e, uid_t quid, gid_t qgid,
	    struct o365_error *err) O365_MUST_CHECK;

/* The ids in queue/ (sorted: oldest first).  Caller frees each and the array. */
int	sm_queue_list(int dirfd, char ***ids_out, size_t *n_out, struct o365_error *err) O365_MUST_CHECK;
void	sm_queue_list_free(char **ids, size_t n);

/* Tests only: at a point of sm_queue_commit, stop (SIGSTOP) or kill
 * (SIGKILL) the process; O365_SENDMAIL_FAULT="commit:kill-msg" etc. is
 * honoured only by test builds.  at 0: never. */
#define SM_FAULT_AFTER_MSG	1	/* .msg renamed, .env not yet */
#define SM_FAULT_AFTER_PAIR	2	/* both renamed, queue/ not fsynced */
void	sm_queue_fault(int at, int stop);

#define SM_SWEEP_TMP_AGE	86400	/* a .t file: a writer may be slow */
#define SM_SWEEP_HALF_AGE	60	/* a half pair: a commit takes milliseconds */

/* Remove what interrupted writers left: .t* files a day old; a .msg without
 * its .env, or a .env without its .msg, a minute old (a .msg only when no
 * commit or runner holds its lock).  Returns how many. */
int	sm_queue_sweep(int dirfd, const struct o365_log *lg);

/* Open and flock(LOCK_EX|LOCK_NB) <id>.msg.  *fd_out = -1 and O365_OK when
 * another runner holds it or the message is gone. */
int	sm_queue_lock(int dirfd, const char *id, int *fd_out, struct o365_error *err) O365_MUST_CHECK;

/*
 * The runner lock, queue.dir/state/runner.lock: held by the runner that
 * drains the queue.  sm_queue_runner_lock opens it (creating it owned by the
 * queue user when root) and tries flock(LOCK_EX|LOCK_NB): 1 and the locked
 * descriptor in *fd_out, 0 when another runner holds it, -1 when there is
 * no lock to be had (no state/: an old tree).  The holder closes it when the
 * queue is empty and then looks once more, so a submitter that finds it held
 * may leave its message to that runner: sm_queue_runner_busy says so
 * (non-zero only when a runner holds it; it takes and drops the lock to
 * find out).
 */
#define SM_RUNNER_LOCK		"state/runner.lock"
int	sm_queue_runner_lock(const struct sm_queue *q, int *fd_out);
int	sm_queue_runner_busy(const struct sm_queue *q);

/* Remove <id>.env then <id>.msg (caller holds the lock). */
int	sm_queue_remove(int dirfd, const char *id, struct o365_error *err) O365_MUST_CHECK;

/* Move <id>.msg and <id>.env into failed/. */
int	sm_queue_fail(struct sm_queue *q, const char *id, struct o365_error *err) O365_MUST_CHECK;

/* -bp: print the queue to fp-like fd. */
int	sm_queue_print(struct sm_queue *q, int outfd, struct o365_error *err) O365_MUST_CHECK;

/* --failed: the same for failed/ (state "failed"). */
int	sm_queue_print_failed(struct sm_queue *q, int outfd, struct o365_error *err) O365_MUST_CHECK;

#endif
