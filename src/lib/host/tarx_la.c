/* tarx_la.c: libarchive loaded once, on the first tar of the files API (tarx_la.h says
 * why it is not linked). */
#include "lib/host/tarx_la.h"

#include <dlfcn.h>
#include <pthread.h>

static struct tarx_la la;
static bool la_ok;
static char la_why[200];
static pthread_once_t la_once = PTHREAD_ONCE_INIT;

static void la_load(void)
{
	void *h = dlopen("libarchive.so.13", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(la_why, sizeof(la_why), "%s", dlerror());
		return;
	}
#define TARX_LA_LOAD(name)                                                                  \
	if (!(la.name = (__typeof__(name) *)dlsym(h, #name))) {                             \
		snprintf(la_why, sizeof(la_why), "libarchive.so.13 lacks %s", #name);       \
		return;                                                                     \
	}
	TARX_LA_FUNCS(TARX_LA_LOAD)
#undef TARX_LA_LOAD
	la_ok = true;
}

const struct tarx_la *tarx_la(agentd_error *err)
{
	pthread_once(&la_once, la_load);
	if (!la_ok) {
		agentd_error_set(err, ENOTSUP, "tar archives need libarchive (Debian: libarchive13): %s",
				 la_why);
		return NULL;
	}
	return &la;
}
