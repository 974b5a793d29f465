/* registry.c: backend names → factories (docs/backends.md#registry): canonical names and aliases,
 * normalisation, registration order, collisions, plugins, and auto-detection by score. */
#include "lib/core/core.h"
#include "lib/backends/oci/oci.h"
#include "lib/backends/microvm/microvm.h" /* issue 15: vm-host */

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>

#define MAX_BACKENDS 32
#define MAX_ALIASES 16
#define NAME_MAX_LEN 63

struct entry {
	char *canonical;
	char *aliases[MAX_ALIASES + 1]; /* NULL-terminated, normalised */
	agentd_backend_factory factory;
	bool by_name_only;	/* issue 13: oci-runtime. auto never picks it */
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry entries[MAX_BACKENDS];
static const char *names[MAX_BACKENDS + 1];
static size_t n_entries;

/* trim, lower-case, '_' ≡ '-'. Returns false for an empty or oversized result. */
static bool normalize(const char *in, char out[NAME_MAX_LEN + 1])
{
	if (!in)
		return false;
	while (isspace((unsigned char)*in))
		in++;
	size_t len = strlen(in);
	while (len && isspace((unsigned char)in[len - 1]))
		len--;
	if (!len || len > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = (char)tolower((unsigned char)in[i]);
		out[i] = c == '_' ? '-' : c;
	}
	out[len] = '\0';
	return true;
}

/* Canonical name owning a normalised key, or NULL. Caller holds reg_lock. */
static struct entry *lookup_locked(const char *key)
{
	for (size_t i = 0; i < n_entries; i++) {
		if (strcmp(entries[i].canonical, key) == 0)
			return &entries[i];
		for (char **a = entries[i].aliases; *a; a++)
			if (strcmp(*a, key) == 0)
				return &entries[i];
	}
	return NULL;
}

static int register_locked(const char *canonical, const char *const *aliases,
			   agentd_backend_factory factory, agentd_error *err)
{
	char canon[NAME_MAX_LEN + 1];
	if (!normalize(canonical, canon))
		return agentd_error_set(err, EINVAL, "backend canonical name cannot be empty");
	if (!factory)
		return agentd_error_set(err, EINVAL, "backend %s: no factory", canon);
	struct entry *e = lookup_locked(canon);
	if (e) {
		if (strcmp(e->canonical, canon) == 0)
			return agentd_error_set(err, EEXIST, "backend '%s' is already registered",
						canon);
		return agentd_error_set(err, EEXIST,
					"backend alias '%s' is already registered for '%s'", canon,
					e->canonical);
	}
	if (n_entries == MAX_BACKENDS)
		return agentd_error_set(err, ENOSPC, "too many backends (max %d)", MAX_BACKENDS);

	char norm[MAX_ALIASES][NAME_MAX_LEN + 1];
	size_t n = 0;
	for (size_t i = 0; aliases && aliases[i]; i++) {
		char a[NAME_MAX_LEN + 1];
		if (!normalize(aliases[i], a))
			continue; /* empty aliases are ignored: no lookup can name them */
		if (strcmp(a, canon) == 0)
			continue;
		bool dup = false;
		for (size_t k = 0; k < n; k++)
			dup |= strcmp(norm[k], a) == 0;
		if (dup)
			continue;
		if ((e = lookup_locked(a)))
			return agentd_error_set(err, EEXIST,
						"backend alias '%s' is already registered for '%s'",
						a, e->canonical);
		if (n == MAX_ALIASES)
			return agentd_error_set(err, E2BIG, "backend %s: too many aliases", canon);
		strcpy(norm[n++], a);
	}
	e = &entries[n_entries];
	memset(e, 0, sizeof(*e));
	e->canonical = xstrdup(canon);
	for (size_t i = 0; i < n; i++)
		e->aliases[i] = xstrdup(norm[i]);
	e->factory = factory;
	names[n_entries++] = e->canonical;
	names[n_entries] = NULL;
	return 0;
}

static void register_builtins(void)
{
	static const char *const host_direct[] = {"none", "host", "workstation", NULL};
	static const char *const linux_native[] = {"linux", "native", "landlock", NULL};
	register_locked("host-direct", host_direct, host_direct_backend_new, NULL);
	register_locked("linux-native", linux_native, linux_native_backend_new, NULL);
	static const char *const container[] = {"namespace", "mount-ns", "bwrap", NULL};
	register_locked("container", container, container_backend_new, NULL);
	/* issue 13: oci-runtime. Only by name: it drives tools outside agentd (runc, crun,
	 * podman, docker), which auto must never pick over container. */
	static const char *const oci[] = {"docker", "podman", "runc", "crun", NULL};
	if (register_locked("oci", oci, oci_backend_new, NULL) == 0)
		entries[n_entries - 1].by_name_only = true;
	/* issue 15: vm-host. A micro-VM per sandbox: chosen by name, auto keeps container. */
	static const char *const microvm[] = {"firecracker", "vm", "qemu", NULL};
	if (register_locked("microvm", microvm, microvm_backend_new, NULL) == 0)
		entries[n_entries - 1].by_name_only = true;
}

static pthread_once_t builtins_once = PTHREAD_ONCE_INIT;
static void builtins_init(void)
{
	pthread_mutex_lock(&reg_lock);
	register_builtins();
	pthread_mutex_unlock(&reg_lock);
}

void registry_ensure_builtins(void)
{
	pthread_once(&builtins_once, builtins_init);
}

int agentd_register_backend(const char *canonical, const char *const *aliases,
			    agentd_backend_factory factory, agentd_error *err)
{
	registry_ensure_builtins();
	pthread_mutex_lock(&reg_lock);
	int r = register_locked(canonical, aliases, factory, err);
	pthread_mutex_unlock(&reg_lock);
	return r;
}

const char *agentd_canonical_backend_name(const char *name)
{
	registry_ensure_builtins();
	char key[NAME_MAX_LEN + 1];
	if (!normalize(name, key))
		return NULL;
	pthread_mutex_lock(&reg_lock);
	struct entry *e = lookup_locked(key);
	pthread_mutex_unlock(&reg_lock);
	return e ? e->canonical : NULL;
}

const char *const *agentd_available_backends(size_t *n)
{
	registry_ensure_builtins();
	pthread_mutex_lock(&reg_lock);
	if (n)
		*n = n_entries;
	pthread_mutex_unlock(&reg_lock);
	return names;
}

const char *const *agentd_backend_aliases(const char *canonical)
{
	registry_ensure_builtins();
	char key[NAME_MAX_LEN + 1];
	if (!normalize(canonical, key))
		return NULL;
	pthread_mutex_lock(&reg_lock);
	struct entry *e = lookup_locked(key);
	pthread_mutex_unlock(&reg_lock);
	return e ? (const char *const *)e->aliases : NULL;
}

/* issue 13: oci-runtime. The name a factory is being called for (agentd_create_backend). */
static __thread const char *requested_name;

const char *agentd_backend_requested_name(void)
{
	return requested_name;
}

/* Auto-detection leaves out the backends only a caller's name may pick. */
static bool by_name_only(const char *canonical)
{
	pthread_mutex_lock(&reg_lock);
	struct entry *e = lookup_locked(canonical);
	bool r = e && e->by_name_only;
	pthread_mutex_unlock(&reg_lock);
	return r;
}

int agentd_create_backend(const char *name, const char *work_root, agentd_backend **out,
			  agentd_error *err)
{
	registry_ensure_builtins();
	char key[NAME_MAX_LEN + 1];
	agentd_backend_factory factory = NULL;
	const char *canonical = NULL;
	pthread_mutex_lock(&reg_lock);
	struct entry *e = normalize(name, key) ? lookup_locked(key) : NULL;
	if (e) {
		factory = e->factory;
		canonical = e->canonical;
	}
	char avail[512] = "";
	for (size_t i = 0; !e && i < n_entries; i++) {
		size_t l = strlen(avail);
		snprintf(avail + l, sizeof(avail) - l, "%s%s", i ? ", " : "", entries[i].canonical);
	}
	pthread_mutex_unlock(&reg_lock);
	if (!factory)
		return agentd_error_set(err, ENOENT,
					"unknown isolation backend '%s'; available backends: %s",
					name ? name : "", avail);
	requested_name = key;
	int r = factory(work_root ? work_root : agentd_default_work_root(), out, err);
	requested_name = NULL;
	if (r < 0)
		return agentd_error_prefix(err, "initialize isolation backend '%s'", canonical);
	return 0;
}

agentd_backend *agentd_detect_best_backend(const char *work_root, agentd_error *warn)
{
	size_t n;
	const char *const *all = agentd_available_backends(&n);
	agentd_backend *best = NULL;
	unsigned best_score = 0;
	for (size_t i = 0; i < n; i++) {
		agentd_backend *b = NULL;
		if (by_name_only(all[i]) || agentd_create_backend(all[i], work_root, &b, NULL) < 0)
			continue;
		agentd_backend_caps caps;
		if (agentd_backend_probe(b, &caps, NULL) < 0 || !caps.available) {
			agentd_backend_caps_free(&caps);
			agentd_backend_free(b);
			continue;
		}
		unsigned score = agentd_backend_score(&caps);
		agentd_backend_caps_free(&caps);
		if (!best || score > best_score) {
			agentd_backend_free(best);
			best = b;
			best_score = score;
		} else {
			agentd_backend_free(b);
		}
	}
	if (best)
		return best;
	agentd_error_set(warn, ENODEV,
			 "no isolation backend is usable on this host; falling back to host-direct "
			 "(no kernel isolation)");
	agentd_backend *b = NULL;
	host_direct_backend_new(work_root ? work_root : agentd_default_work_root(), &b, NULL);
	return b;
}

/* One pass of auto for spec: the best available backend that can run it (degrade: without
 * what it cannot enforce). Else why says what stood in the way: in full for the best of the
 * backends that could not, by item name for the others. */
static const char *select_pass(const agentd_spec *spec, bool degrade, char *why, size_t n)
{
	size_t count;
	const char *const *all = agentd_available_backends(&count);
	const char *best = NULL, *near = NULL;
	unsigned best_score = 0, near_score = 0;
	char near_why[AGENTD_ERROR_MAX] = "", others[AGENTD_ERROR_MAX] = "";
	size_t olen = 0;
	for (size_t i = 0; i < count; i++) {
		agentd_backend *b = NULL;
		agentd_backend_caps caps;
		if (by_name_only(all[i]))
			continue;
		if (agentd_create_backend(all[i], NULL, &b, NULL) < 0 ||
		    agentd_backend_probe(b, &caps, NULL) < 0) {
			agentd_backend_free(b);
			continue;
		}
		unsigned score = agentd_backend_score(&caps);
		char what[256] = "";
		if (!caps.available) {
			snprintf(what, sizeof(what), "unavailable");
		} else if (enforce_can_run(&caps, spec, degrade)) {
			if (!best || score > best_score) {
				best = all[i];
				best_score = score;
			}
		} else {
			enforce_item_names(&caps, spec, what, sizeof(what));
			if (!near || score > near_score) {
				near = all[i];
				near_score = score;
				enforce_describe(&caps, spec, near_why, sizeof(near_why));
			}
		}
		if (what[0] && olen < sizeof(others))
			olen += (size_t)snprintf(others + olen, sizeof(others) - olen, "%s%s: %s",
						 olen ? ", " : "", all[i], what);
		agentd_backend_caps_free(&caps);
		agentd_backend_free(b);
	}
	if (near)
		snprintf(why, n, "%s cannot enforce %s (backends here: %s)", near, near_why, others);
	else
		snprintf(why, n, "no backend is available here (%s)", others);
	return best;
}

int agentd_select_backend(const agentd_spec *spec, const agentd_create_opts *opts,
			  const char **canonical, agentd_error *err)
{
	char why[AGENTD_ERROR_MAX];
	bool degrade = opts && opts->allow_degraded;
	*canonical = select_pass(spec, false, why, sizeof(why));
	if (!*canonical && degrade)
		*canonical = select_pass(spec, true, why, sizeof(why));
	if (*canonical)
		return 0;
	return agentd_error_set(err, ENOTSUP, "auto: no backend enforces this policy here: %s%s",
				why,
				degrade ? ""
					: "; pass --allow-degraded (API: \"allow_degraded\": true) "
					  "to run anyway, without what is not enforced");
}

int agentd_load_plugins(const char *dir, agentd_error *err)
{
	DIR *d = opendir(dir);
	if (!d)
		return agentd_error_errno(err, errno, "plugin dir %s", dir);
	int loaded = 0, ret = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len < 4 || strcmp(de->d_name + len - 3, ".so") != 0)
			continue;
		_cleanup_free_ char *path = xasprintf("%s/%s", dir, de->d_name);
		void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		if (!h) {
			ret = agentd_error_set(err, ENOEXEC, "plugin %s: %s", path, dlerror());
			continue;
		}
		const unsigned *abi = dlsym(h, "agentd_plugin_abi_version");
		if (!abi || *abi != AGENTD_BACKEND_ABI_VERSION) {
			if (abi)
				ret = agentd_error_set(err, ENOEXEC,
						       "plugin %s: built for backend ABI version %u, "
						       "this agentd has version %u: rebuild it against "
						       "this agentd-backend.h", path, *abi,
						       AGENTD_BACKEND_ABI_VERSION);
			else
				ret = agentd_error_set(err, ENOEXEC,
						       "plugin %s: no AGENTD_PLUGIN_ABI (backend ABI "
						       "version unknown; this agentd has version %u)",
						       path, AGENTD_BACKEND_ABI_VERSION);
			dlclose(h);
			continue;
		}
		int (*init)(void) = (int (*)(void))dlsym(h, "agentd_plugin_init");
		if (!init) {
			ret = agentd_error_set(err, ENOEXEC,
					       "plugin %s: no agentd_plugin_init symbol", path);
			dlclose(h);
			continue;
		}
		if (init() < 0) {
			ret = agentd_error_set(err, EINVAL, "plugin %s: agentd_plugin_init failed",
					       path);
			dlclose(h);
			continue;
		}
		loaded++; /* the handle stays open: the plugin's factory lives in it */
	}
	closedir(d);
	return ret < 0 ? ret : loaded;
}
