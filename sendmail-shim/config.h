/* config.h: o365-sendmail's settings (see etc/o365/sendmail.conf). */
#ifndef O365_SM_CONFIG_H
#define O365_SM_CONFIG_H

#include "o365/conf.h"
#include "sm.h"

struct sm_conf {
	char	*smtp_host;
	int	 smtp_port;
	int	 smtp_timeout;
	char	*smtp_tls;
	char	*smtp_helo;
	char	*tls_ca_file;
	char	*tls_ca_dir;
	char	*tls_min_version;
	char	*auth_mechanism;
	char	*auth_user;
	char	*auth_password_file;
	char	*from_address;
	char	*from_rewrite;
	char	*queue_dir;
	char	*queue_user;
	int	 queue_max_age;
	char	*queue_bounce_to;
	struct o365_conf_pair *aliases;
	char	*aliases_file;
	int	 flow_connections;	/* flow.*: see flow.h */
	int	 flow_per_minute;
	int	 flow_day_recipients;
	int	 flow_max_recipients;
	int	 flow_hold_retry;	/* a held queue: first retry, seconds (900) */
	int	 flow_hold_retry_max;	/* ... doubling up to this (21600) */
	char	*oauth_authority;	/* auth.mechanism "xoauth2" (xoauth.c) */
	char	*oauth_tenant;
	char	*oauth_client_id;
	char	*oauth_client_secret_file;
	char	*oauth_refresh_token_file;
	char	*oauth_certificate_file;	/* with oauth_private_key_file: a certificate
						 * credential instead of a client secret */
	char	*oauth_private_key_file;
};

int	sm_conf_load(const char *path, struct sm_conf *c, struct o365_error *err) O365_MUST_CHECK;
int	sm_conf_load_string(const char *text, struct sm_conf *c, struct o365_error *err) O365_MUST_CHECK;
void	sm_conf_free(struct sm_conf *c);
enum sm_rewrite sm_conf_rewrite(const struct sm_conf *c);
/* The domain of from.address, or NULL. */
const char *sm_conf_domain(const struct sm_conf *c);
/* What relaying needs (from.address, auth.user, a supported mechanism). */
struct sm_flow_limits;
/* The flow.* settings as limits. */
void	sm_conf_flow_limits(const struct sm_conf *c, struct sm_flow_limits *l);
int	sm_conf_check_relay(const struct sm_conf *c, struct o365_error *err) O365_MUST_CHECK;

#endif
