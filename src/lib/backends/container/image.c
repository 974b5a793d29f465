/* image.c: issue 13, a sandbox whose root is an image: its lease from the store, its layers
 * as idmapped trees for the mount plan, the image's defaults under the policy's, and whether
 * this host can (probe). */
#include "lib/backends/container/container.h"

#include <ctype.h>
#include <sys/utsname.h>

/* The uid named in the image's /etc/passwd (name, then x, then the uid), read through the
 * layers from the top with every path resolved inside that layer's own root: never a host
 * file, whatever the image links to. A whiteout (a character device) ends the search. */
static int passwd_uid(const agentd_image_lease *l, const char *name, unsigned long *uid)
{
	for (size_t i = l->n_layers; i-- > 0;) {
		int fd = openat_beneath(l->layer_fds[i], "etc/passwd", O_PATH | O_CLOEXEC, 0,
					RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
		if (fd < 0 && errno == ENOENT)
			continue;
		struct stat st;
		/* its size before a byte is read: an image's 8 GiB passwd is not read whole
		 * into memory to be refused after (issue 13: review13) */
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
		    st.st_size > (4 << 20)) {
			if (fd >= 0)
				close(fd);
			return -1;
		}
		close(fd);
		fd = openat_beneath(l->layer_fds[i], "etc/passwd", O_RDONLY | O_CLOEXEC, 0,
				    RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
		if (fd < 0)
			return -1;
		size_t len = 0;
		_cleanup_free_ char *text = (char *)read_fd_all(fd, &len);
		close(fd);
		if (!text || len > (4u << 20))
			return -1;
		size_t nlen = strlen(name);
		for (char *line = text; line && *line;) {
			char *next = strchr(line, '\n');
			if (next)
				*next++ = '\0';
			char *f2 = strchr(line, ':'), *f3 = f2 ? strchr(f2 + 1, ':') : NULL;
			if (f2 && (size_t)(f2 - line) == nlen && strncmp(line, name, nlen) == 0 &&
			    f3 && isdigit((unsigned char)f3[1])) {
				char *end;
				*uid = strtoul(f3 + 1, &end, 10);
				return *end == ':' ? 0 : -1;
			}
			line = next;
		}
		return -1;
	}
	return -1;
}

/* The image's User ("uid[:gid]" or "name[:group]") as the sandbox's one id inside: its
 * files (on disk with that uid) are then the sandbox user's. Only one id is mapped, so a
 * group differing from it is not kept. */
static int image_user(const agentd_image_lease *l, const char *user, uid_t *out, agentd_error *err)
{
	_cleanup_free_ char *name = xstrdup(user);
	char *colon = strchr(name, ':');
	if (colon)
		*colon = '\0';
	unsigned long uid = 0;
	char *end;
	if (isdigit((unsigned char)name[0]))
		uid = strtoul(name, &end, 10);
	if (!name[0] ||
	    (isdigit((unsigned char)name[0]) ? *end != '\0' : passwd_uid(l, name, &uid) < 0))
		return agentd_error_set(err, EINVAL,
					"image %s: user \"%s\" is not a uid nor a name of its "
					"/etc/passwd",
					l->id, user);
	if (uid > 65535)
		return agentd_error_set(err, EINVAL, "image %s: user \"%s\": uid %lu above 65535",
					l->id, user, uid);
	*out = (uid_t)uid;
	return 0;
}

/* The image's WorkingDir where the policy left the default; one the plan cannot use (the
 * root, /proc, relative) is not taken. */
static void image_workdir(agentd_spec *spec, const char *wd)
{
	if (!wd || wd[0] != '/' || strcmp(spec->workdir, "/workspace") != 0)
		return;
	char norm[PATH_MAX];
	size_t n = strlen(wd);
	if (n >= sizeof(norm) || strstr(wd, "..") || strcmp(wd, "/") == 0 ||
	    strncmp(wd, "/proc", 5) == 0 || strncmp(wd, "/dev", 4) == 0)
		return;
	memcpy(norm, wd, n + 1);
	while (n > 1 && norm[n - 1] == '/')
		norm[--n] = '\0';
	free(spec->workdir);
	spec->workdir = xstrdup(norm);
}

int ctr_image_acquire(agentd_backend *b, agentd_sandbox *sb, struct ctr *c, agentd_error *err)
{
	agentd_spec *spec = &sb->spec;
	if (c->unprivileged)
		return agentd_error_set(err, EPERM,
					"image %s: needs agentd as root (the image's layers are "
					"idmapped mounts)",
					spec->image);
	agentd_image_store *store = agentd_backend_image_store(b, err);
	if (!store)
		return agentd_error_prefix(err, "image %s", spec->image);
	if (agentd_image_acquire(store, spec->image, &c->image, err) < 0)
		return -1; /* the store's message names the image */
	const agentd_image_config *cfg = &c->image->config;
	for (size_t i = 0; i < cfg->env.n; i++) {
		const char *kv = cfg->env.v[i], *eq = strchr(kv, '=');
		if (!eq || eq == kv)
			continue;
		_cleanup_free_ char *key = xasprintf("%.*s", (int)(eq - kv), kv);
		if (!kvv_get(&spec->environment, key)) /* the policy's first */
			kvv_set(&spec->environment, key, eq + 1);
	}
	image_workdir(spec, cfg->workdir);
	/* run_as 0 is the policy's own choice of root; else the image's user, else its root */
	c->inner_id = 0;
	if (spec->run_as_uid != 0 && cfg->user && cfg->user[0] &&
	    image_user(c->image, cfg->user, &c->inner_id, err) < 0)
		return -1;
	return 0;
}

/* The layers, bottom first, as read-only detached trees idmapped so that the files the
 * image has for the sandbox's id inside (its root, or its User) are the sandbox's host
 * id's: never host root. 0, or -1 + err and nothing open. */
int ctr_image_layers(const struct ctr *c, int **out, agentd_error *err)
{
	const agentd_image_lease *l = c->image;
	int userns = idmap_userns_new(c->inner_id, c->host_uid, c->host_gid);
	if (userns < 0)
		return agentd_error_errno(err, -userns, "image %s: idmap user namespace", l->id);
	int *fds = xmalloc((l->n_layers + 1) * sizeof(int));
	for (size_t i = 0; i < l->n_layers; i++) {
		fds[i] = idmap_tree(l->layer_fds[i], ".", userns,
				    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
		if (fds[i] < 0) {
			int e = -fds[i];
			while (i-- > 0)
				close(fds[i]);
			free(fds);
			close(userns);
			return agentd_error_errno(err, e, "image %s: idmapped mount of layer %zu",
						  l->id, i + 1);
		}
	}
	close(userns);
	*out = fds;
	return 0;
}

/* Root, overlayfs that a user namespace may mount (5.11) over idmapped layers (5.19). */
void ctr_image_probe(agentd_backend_caps *caps, const agentd_platform *p)
{
	struct utsname u;
	unsigned major = 0, minor = 0;
	_cleanup_free_ char *fs = read_file_at(AT_FDCWD, "/proc/filesystems", 1 << 16, NULL);
	if (uname(&u) == 0)
		sscanf(u.release, "%u.%u", &major, &minor);
	if (geteuid() != 0)
		agentd_caps_cannot_enforce(caps, AGENTD_ITEM_IMAGE,
					   "agentd is not root: no idmapped mounts of the image's "
					   "layers");
	else if (!p->user_namespaces)
		agentd_caps_cannot_enforce(caps, AGENTD_ITEM_IMAGE, "no user namespaces here");
	else if (!fs || !strstr(fs, "\toverlay\n"))
		agentd_caps_cannot_enforce(caps, AGENTD_ITEM_IMAGE, "no overlayfs in this kernel");
	else if (major < 5 || (major == 5 && minor < 19))
		agentd_caps_cannot_enforce(caps, AGENTD_ITEM_IMAGE,
					   "kernel %s: no overlayfs of idmapped layers in a user "
					   "namespace (5.19)",
					   u.release);
	else
		agentd_caps_enforce(caps, AGENTD_ITEM_IMAGE);
}
