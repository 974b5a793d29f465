/* error.c: agentd_error, the out-parameter that carries context up to the user.
 * Each layer prefixes what it was doing; the innermost cause stays at the end. */
#include "common/common.h"

#include <stdarg.h>

/* Copy full into msg; when it does not fit, cut the middle, not the end: the context is at
 * the front and the root cause at the back, and both matter ("create sandbox: ... : No
 * space left on device"). Cuts fall between UTF-8 sequences. */
static void fit_message(char msg[AGENTD_ERROR_MAX], const char *full)
{
	size_t n = strlen(full);
	if (n < AGENTD_ERROR_MAX) {
		memcpy(msg, full, n + 1);
		return;
	}
	static const char mark[] = " [...] ";
	size_t room = AGENTD_ERROR_MAX - 1 - (sizeof(mark) - 1);
	size_t head = room / 3, tail = room - head;
	while (head > 0 && ((unsigned char)full[head] & 0xc0) == 0x80)
		head--;		/* full[head] starts the sequence that is cut away */
	const char *t = full + n - tail;
	while (*t && ((unsigned char)*t & 0xc0) == 0x80)
		t++;
	memcpy(msg, full, head);
	memcpy(msg + head, mark, sizeof(mark) - 1);
	memcpy(msg + head + sizeof(mark) - 1, t, strlen(t) + 1);
}

int agentd_error_set(agentd_error *err, int code, const char *fmt, ...)
{
	if (!err)
		return -1;
	char full[2 * AGENTD_ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(full, sizeof(full), fmt, ap);
	va_end(ap);
	fit_message(err->msg, full);
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
	char full[2 * AGENTD_ERROR_MAX];
	snprintf(full, sizeof(full), "%s: %s", what, strerror(errnum));
	fit_message(err->msg, full);
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
	char full[2 * AGENTD_ERROR_MAX + 2];
	if (old[0])
		snprintf(full, sizeof(full), "%s: %s", ctx, old);
	else
		snprintf(full, sizeof(full), "%s", ctx);
	fit_message(err->msg, full);
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

void print_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("agentd: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}
