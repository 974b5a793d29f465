/* etc.c: the sandbox's /etc: the allowlisted host entries (landlock.c owns the list) and the
 * generated files (hostname, hosts, passwd, group, resolv.conf), as a set and as entries. */
#include "lib/jail/mounts/mounts_internal.h"

#include <limits.h>
#include <sys/stat.h>

void etc_set_free(struct etc_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].path);
		free(s->v[i].source);
		free(s->v[i].data);
	}
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

static void etc_push(struct etc_set *s, enum etc_kind k, const char *path, const char *source,
		     const char *data, const struct stat *st)
{
	s->v = xrealloc(s->v, (s->n + 1) * sizeof(*s->v));
	struct etc_item *it = &s->v[s->n++];
	memset(it, 0, sizeof(*it));
	it->kind = k;
	it->path = xstrdup(path);
	it->source = source ? xstrdup(source) : NULL;
	it->data = data ? xstrdup(data) : NULL;
	if (st)
		it->st = *st;
}

static bool in_runtime(const struct builder *b, const char *p)
{
	for (size_t i = 0; i < b->runtime.n; i++)
		if (path_within(p, b->runtime.v[i]))
			return true;
	return path_within(p, "/proc");
}

static const char *const generated[] = {"/etc/hostname", "/etc/hosts", "/etc/passwd", "/etc/group"};

/* The allowlisted /etc (landlock.c owns the list) but what etc_generate writes. A symlink
 * is kept when what it points to is visible in the sandbox (localtime ->
 * /usr/share/zoneinfo), else its target is used. */
static void etc_allowed(struct builder *b, const struct mount_plan_opts *o, const agentd_strv *sys,
			struct etc_set *out)
{
	for (size_t i = 0; i < sys->n; i++) {
		const char *p = sys->v[i];
		struct stat st;
		bool skip = !path_below(p, "/etc") || lstat(p, &st) < 0 ||
			    (o->network_none && strcmp(p, "/etc/resolv.conf") == 0);
		for (size_t g = 0; g < ARRAY_SIZE(generated) && !skip; g++)
			skip = strcmp(p, generated[g]) == 0;
		if (skip)
			continue;
		_cleanup_free_ char *real = NULL;
		if (S_ISLNK(st.st_mode)) {
			char link[PATH_MAX];
			ssize_t n = readlink(p, link, sizeof(link) - 1);
			real = realpath(p, NULL);
			if (n <= 0 || !real)
				continue; /* dangling: nothing to show */
			link[n] = '\0';
			if (in_runtime(b, real)) {
				etc_push(out, ETC_LINK, p, NULL, link, NULL);
				continue;
			}
			if (stat(real, &st) < 0)
				continue;
		}
		if (S_ISREG(st.st_mode))
			etc_push(out, ETC_FILE, p, real ? real : p, NULL, &st);
		else if (S_ISDIR(st.st_mode))
			etc_push(out, ETC_DIR, p, real ? real : p, NULL, &st);
	}
}

/* passwd and group are generated: in a user namespace host accounts are unmapped (shown as
 * nobody) anyway, and the sandbox's own uid must resolve. */
static void etc_generate(const char *wd, const struct mount_plan_opts *o, struct etc_set *out)
{
	const char *host = o->hostname ? o->hostname : "agentd";
	_cleanup_free_ char *hostname = xasprintf("%s\n", host);
	etc_push(out, ETC_GEN, "/etc/hostname", NULL, hostname, NULL);
	_cleanup_free_ char *host_hosts = NULL;
	if (!o->network_none) /* the host's names too, after ours */
		host_hosts = read_file_at(AT_FDCWD, "/etc/hosts", 1 << 20, NULL);
	_cleanup_free_ char *hosts = xasprintf("127.0.0.1\tlocalhost %s\n::1\tlocalhost\n%s", host,
					       host_hosts ? host_hosts : "");
	etc_push(out, ETC_GEN, "/etc/hosts", NULL, hosts, NULL);
	if (o->network_none)
		etc_push(out, ETC_GEN, "/etc/resolv.conf", NULL, "nameserver 127.0.0.1\n", NULL);
	if (o->image_layers) {
		/* issue 13: the image's own accounts; the host's resolver on the host's network */
		_cleanup_free_ char *resolv =
		    o->network_none ? NULL : read_file_at(AT_FDCWD, "/etc/resolv.conf", 1 << 20, NULL);
		if (resolv)
			etc_push(out, ETC_GEN, "/etc/resolv.conf", NULL, resolv, NULL);
		return;
	}
	unsigned uid = o->sandbox_uid, gid = o->sandbox_gid;
	bool own_user = uid != 0 && uid != 65534, own_group = gid != 0 && gid != 65534;
	_cleanup_free_ char *user =
	    own_user ? xasprintf("agent:x:%u:%u:agent:%s:/bin/sh\n", uid, gid, wd) : xstrdup("");
	_cleanup_free_ char *passwd =
	    xasprintf("root:x:0:0:root:%s:/bin/sh\n"
		      "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n%s",
		      uid == 0 ? wd : "/root", user);
	etc_push(out, ETC_GEN, "/etc/passwd", NULL, passwd, NULL);
	_cleanup_free_ char *grp = own_group ? xasprintf("agent:x:%u:\n", gid) : xstrdup("");
	_cleanup_free_ char *group = xasprintf("root:x:0:\nnogroup:x:65534:\n%s", grp);
	etc_push(out, ETC_GEN, "/etc/group", NULL, group, NULL);
}

/* The allowlisted /etc plus the generated files. */
void etc_collect(struct builder *b, const char *wd, const struct mount_plan_opts *o,
		 const agentd_strv *sys, struct etc_set *out)
{
	if (!o->image_layers) /* issue 13: an image's /etc is its own but for etc_generate's */
		etc_allowed(b, o, sys, out);
	etc_generate(wd, o, out);
}

/* /etc, a directory of the scratch root (read-only with it), so no mount shows a host path
 * for it (mountinfo's field 4): the allowlisted files copied there by the init from the
 * cache's pack (in the set's order, as cache_fill wrote it), else each a read-only bind of
 * its host path; the allowlisted directories are read-only binds of theirs (public
 * system paths). */
void add_etc(struct builder *b, const struct etc_set *s, const char *pack)
{
	uint64_t offset = 0;
	for (size_t i = 0; i < s->n; i++) {
		const struct etc_item *it = &s->v[i];
		if (it->kind == ETC_DIR || (it->kind == ETC_FILE && !pack)) {
			add_ro_bind(b, it->path, it->source, it->kind == ETC_DIR);
		} else if (it->kind == ETC_FILE) {
			struct entry *e = add_entry(b, MOUNT_OP_COPY, it->path, pack);
			e->op.mode = it->st.st_mode & 0777;
			e->op.offset = offset;
			e->op.data_len = (size_t)it->st.st_size;
			offset += (uint64_t)it->st.st_size;
		} else if (it->kind == ETC_LINK) {
			add_symlink(b, it->path, it->data);
		} else {
			add_file(b, it->path, it->data, strlen(it->data));
		}
	}
}
