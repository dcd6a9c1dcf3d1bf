/* err.c: error codes, their names, and sanitising of untrusted text. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "o365/err.h"

/* bytes one input byte takes in o365_sanitize's output */
#define SANITIZE_LEN(ch) ((ch) >= 0x20 && (ch) <= 0x7e ? 1 : 4)

const char *
o365_err_name(int code)
{
	switch (code) {
	case O365_OK:		return "ok";
	case O365_E_NOMEM:	return "nomem";
	case O365_E_INVAL:	return "invalid";
	case O365_E_CONFIG:	return "config";
	case O365_E_NET:	return "network";
	case O365_E_TIMEOUT:	return "timeout";
	case O365_E_TLS:	return "tls";
	case O365_E_PROTO:	return "protocol";
	case O365_E_TOOLONG:	return "toolong";
	case O365_E_AUTH:	return "auth";
	case O365_E_TEMP:	return "temporary";
	case O365_E_PERM:	return "permanent";
	case O365_E_IO:		return "io";
	default:		return "unknown";
	}
}

void
o365_error_clear(struct o365_error *err)
{
	if (err == NULL)
		return;
	memset(err, 0, sizeof(*err));
	err->code = O365_OK;
}

size_t
o365_sanitize(char *dst, size_t dstsz, const char *src, size_t srclen)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0, total = 0, room;

	if (dstsz == 0)
		return 0;
	room = dstsz - 1;
	/* does all of it fit?  If not, keep room for the "..." that marks the cut */
	for (i = 0; i < srclen && total <= room; i++)
		total += SANITIZE_LEN((unsigned char)src[i]);
	if (total > room && room >= 3)
		room -= 3;
	for (i = 0; i < srclen; i++) {
		unsigned char ch = (unsigned char)src[i];

		if (o + SANITIZE_LEN(ch) > room)
			break;		/* an escape is never split */
		if (SANITIZE_LEN(ch) == 1) {
			dst[o++] = (char)ch;
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[ch >> 4];
			dst[o++] = hex[ch & 15];
		}
	}
	if (i < srclen && dstsz >= 4) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
	return o;
}

int
o365_error_set(struct o365_error *err, int code, const char *fmt, ...)
{
	char tmp[sizeof(err->why) * 2];
	va_list ap;
	int n;

	if (err == NULL)
		return code;
	err->code = code;
	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(tmp))
		n = sizeof(tmp) - 1;
	o365_sanitize(err->why, sizeof(err->why), tmp, (size_t)n);
	return code;
}
