/* strv.c: string vectors and key/value lists (the spec's argv, paths, env, labels). */
#include "common/common.h"

#include <stdarg.h>
#include <stdio.h>

void strv_push(agentd_strv *sv, const char *s)
{
	sv->v = xrealloc(sv->v, (sv->n + 2) * sizeof(char *));
	sv->v[sv->n++] = xstrdup(s);
	sv->v[sv->n] = NULL;
}

/* issue 15: vm-host (was the oci backend's own) */
void strv_vpushf(agentd_strv *sv, const char *fmt, va_list ap)
{
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	sv->v = xrealloc(sv->v, (sv->n + 2) * sizeof(char *));
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
}

void strv_pushf(agentd_strv *sv, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	strv_vpushf(sv, fmt, ap);
	va_end(ap);
}

void strv_free(agentd_strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = 0;
}

void strv_copy(agentd_strv *dst, const agentd_strv *src)
{
	dst->v = NULL;
	dst->n = 0;
	for (size_t i = 0; i < src->n; i++)
		strv_push(dst, src->v[i]);
}

bool strv_contains(const agentd_strv *sv, const char *s)
{
	for (size_t i = 0; i < sv->n; i++)
		if (strcmp(sv->v[i], s) == 0)
			return true;
	return false;
}

void kvv_set(agentd_kvv *kv, const char *key, const char *value)
{
	for (size_t i = 0; i < kv->n; i++) {
		if (strcmp(kv->v[i].key, key) == 0) {
			free(kv->v[i].value);
			kv->v[i].value = xstrdup(value);
			return;
		}
	}
	kv->v = xrealloc(kv->v, (kv->n + 1) * sizeof(agentd_kv));
	kv->v[kv->n].key = xstrdup(key);
	kv->v[kv->n].value = xstrdup(value);
	kv->n++;
}

const char *kvv_get(const agentd_kvv *kv, const char *key)
{
	for (size_t i = 0; i < kv->n; i++)
		if (strcmp(kv->v[i].key, key) == 0)
			return kv->v[i].value;
	return NULL;
}

void kvv_free(agentd_kvv *kv)
{
	for (size_t i = 0; i < kv->n; i++) {
		free(kv->v[i].key);
		free(kv->v[i].value);
	}
	free(kv->v);
	kv->v = NULL;
	kv->n = 0;
}

void kvv_copy(agentd_kvv *dst, const agentd_kvv *src)
{
	dst->v = NULL;
	dst->n = 0;
	for (size_t i = 0; i < src->n; i++)
		kvv_set(dst, src->v[i].key, src->v[i].value);
}
