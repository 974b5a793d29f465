/* error.c: agentd_error, the out-parameter that carries context up to the user.
 * Each layer prefixes what it was doing; the innermost cause stays at the end. */
#include "internal.h"

#include <stdarg.h>

int agentd_error_set(agentd_error *err, int code, const char *fmt, ...)
{
	if (!err)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	err->code = code;
	return -1;
}

int agentd_error_errno(agentd_error *err, int errnum, const char *fmt, ...)
{
	if (!err)
		return -1;
	char what[AGENTD_ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(err->msg, sizeof(err->msg), "%s: %s", what, strerror(errnum));
	err->code = errnum;
	return -1;
}

int agentd_error_prefix(agentd_error *err, const char *fmt, ...)
{
	if (!err)
		return -1;
	char ctx[AGENTD_ERROR_MAX], old[AGENTD_ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	if (old[0])
		snprintf(err->msg, sizeof(err->msg), "%s: %s", ctx, old);
	else
		snprintf(err->msg, sizeof(err->msg), "%s", ctx);
	if (!err->code)
		err->code = EINVAL;
	return -1;
}

void agentd_error_clear(agentd_error *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}
