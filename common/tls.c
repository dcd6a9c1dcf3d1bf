/* tls.c: OpenSSL client side of a connection.  (Placeholder until TLS lands.) */
#include <string.h>

#include "conn_int.h"
#include "o365/tls.h"

int
o365_tls_version_parse(const char *s, int *out)
{
	if (s != NULL && strcmp(s, "1.2") == 0) {
		*out = TLS1_2_VERSION;
		return O365_OK;
	}
	if (s != NULL && strcmp(s, "1.3") == 0) {
		*out = TLS1_3_VERSION;
		return O365_OK;
	}
	return O365_E_CONFIG;
}

int
o365_conn_start_tls(struct o365_conn *c, const struct o365_tls_opts *opts, const char *host,
    const struct o365_deadline *dl, const struct o365_log *lg, struct o365_error *err)
{
	return o365_error_set(err, O365_E_TLS, "TLS not implemented yet");
}

int
o365_conn_tls_info(const struct o365_conn *c, struct o365_tls_info *out)
{
	return O365_E_INVAL;
}

int
conn_tls_read(struct o365_conn *c, void *p, size_t n, size_t *got,
    const struct o365_deadline *dl, struct o365_error *err)
{
	return o365_error_set(err, O365_E_TLS, "TLS not implemented yet");
}

int
conn_tls_write(struct o365_conn *c, const void *p, size_t n,
    const struct o365_deadline *dl, struct o365_error *err)
{
	return o365_error_set(err, O365_E_TLS, "TLS not implemented yet");
}

void
conn_tls_free(struct o365_conn *c)
{
	(void)c;
}
