/* overlay.c: an engine's overlayfs rootfs (podman, containerd), which the kernel cannot idmap,
 * rebuilt as a new detached overlay of the same layers each idmapped through the container's
 * user namespace, so the image's files are its root's, as they are under runc.
 *
 * Measured on 6.18: mount_setattr(MOUNT_ATTR_IDMAP) on an open_tree clone of an overlay mount
 * is EINVAL (overlayfs has no FS_ALLOW_IDMAP), while its layers' filesystem (ext4, xfs,
 * btrfs, tmpfs) takes idmapped mounts, and overlayfs takes idmapped layers as fds
 * (fsconfig FSCONFIG_SET_FD "lowerdir+", "datadir+", "upperdir", "workdir": 6.13+). The
 * upper and work directories must lie under one mount: one idmapped tree of their common
 * parent. The overlay's creator credentials (what it writes its layers with: the work
 * directory, copy-ups, whiteouts) are the runtime's capabilities, so it keeps the engine's
 * trusted.overlay.* xattrs, with the fs ids of the container's root, which the idmapped upper
 * stores as 0 (host root's fs id has no mapping there: EOVERFLOW, mounted read-only).
 *
 * The engine is trusted: the layer paths come from its mount (our /proc/self/mountinfo).
 * The upper layer's content is the container's: nothing here opens a path inside it. */
#include "lib/runtime/verbs.h"

#include "common/kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/securebits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x00001000U
#endif
#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x00002000
#endif

#define OVL_OWN_WORKDIR "agentd-runc"	/* the rebuilt overlay's, in the engine's workdir */

/* The engine's overlay as its mountinfo line gives it. */
struct ovl_source {
	agentd_strv lower, data;	/* lowerdir (top first) and data-only layers */
	char *upper, *work;		/* NULL: a read-only overlay */
	agentd_strv opts;		/* its other superblock options, "key" or "key=value" */
	uint64_t attr;			/* MOUNT_ATTR_* of the mount's own options */
};

static void ovl_source_free(struct ovl_source *o)
{
	strv_free(&o->lower);
	strv_free(&o->data);
	strv_free(&o->opts);
	free(o->upper);
	free(o->work);
}

/* mountinfo's \ooo escapes (of space, tab, newline, backslash; overlayfs's "," and "=" too),
 * decoded in place. */
static char *unescape_octal(char *s)
{
	char *o = s;
	for (const char *i = s; *i;) {
		bool oct = i[0] == '\\' && i[1] >= '0' && i[1] <= '3' && i[2] >= '0' &&
			   i[2] <= '7' && i[3] >= '0' && i[3] <= '7';
		*o++ = oct ? (char)((i[1] - '0') << 6 | (i[2] - '0') << 3 | (i[3] - '0')) : *i;
		i += oct ? 4 : 1;
	}
	*o = '\0';
	return s;
}

/* lowerdir's own syntax: layers separated by ':', "\:" a colon in a path, "::" before the
 * data-only layers. */
static void split_lowerdir(const char *s, struct ovl_source *o)
{
	char *buf = xmalloc(strlen(s) + 1), *b = buf;
	bool data = false;
	for (;; s++) {
		if (*s == '\\' && s[1]) {
			*b++ = *++s;
			continue;
		}
		if (*s && *s != ':') {
			*b++ = *s;
			continue;
		}
		*b = '\0';
		if (*buf)
			strv_push(data ? &o->data : &o->lower, buf);
		b = buf;
		if (!*s)
			break;
		if (s[1] == ':') {
			data = true;
			s++;
		}
	}
	free(buf);
}

static void parse_super_opts(char *opts, struct ovl_source *o)
{
	char *save = NULL;
	for (char *t = strtok_r(opts, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		unescape_octal(t);
		if (!strncmp(t, "lowerdir=", 9))
			split_lowerdir(t + 9, o);
		else if (!strncmp(t, "lowerdir+=", 10))
			strv_push(&o->lower, t + 10);
		else if (!strncmp(t, "datadir+=", 9))
			strv_push(&o->data, t + 9);
		else if (!strncmp(t, "upperdir=", 9))
			o->upper = xstrdup(t + 9);
		else if (!strncmp(t, "workdir=", 8))
			o->work = xstrdup(t + 8);
		else if (strcmp(t, "rw") && strcmp(t, "volatile") && strcmp(t, "fsync=volatile"))
			strv_push(&o->opts, t);	/* not volatile: a restart remounts the upper */
	}
}

static uint64_t mount_attr_of(char *opts)
{
	static const struct {
		const char *name;
		uint64_t attr;
	} table[] = {{"ro", MOUNT_ATTR_RDONLY},	  {"nosuid", MOUNT_ATTR_NOSUID},
		     {"nodev", MOUNT_ATTR_NODEV},	  {"noexec", MOUNT_ATTR_NOEXEC},
		     {"noatime", MOUNT_ATTR_NOATIME}, {"nodiratime", MOUNT_ATTR_NODIRATIME}};
	uint64_t attr = 0;
	char *save = NULL;
	for (char *t = strtok_r(opts, ",", &save); t; t = strtok_r(NULL, ",", &save))
		for (size_t i = 0; i < ARRAY_SIZE(table); i++)
			attr |= strcmp(t, table[i].name) ? 0 : table[i].attr;
	return attr;
}

/* One mountinfo line: "id parent maj:min root mountpoint opts [tags] - type source super".
 * The overlay's own, when it is the rootfs's mount, mounted whole (root "/"), and has no
 * mount below it (the rebuilt overlay would lose it). */
static int parse_line(char *line, struct ovl_source *o, agentd_error *err)
{
	char root[8], mnt_opts[512];
	char *dash = strstr(line, " - ");
	if (!dash || sscanf(line, "%*u %*u %*s %7s %*s %511s", root, mnt_opts) != 2)
		return agentd_error_set(err, EINVAL, "mountinfo: a line not understood");
	char *save = NULL, *type = strtok_r(dash + 3, " \n", &save);
	(void)strtok_r(NULL, " \n", &save); /* the source */
	char *super = strtok_r(NULL, " \n", &save);
	if (!type || strcmp(type, "overlay") || !super)
		return agentd_error_set(err, EINVAL, "not an overlayfs mount (%s)",
					type ? type : "?");
	if (strcmp(root, "/"))
		return agentd_error_set(err, EINVAL, "a directory below an overlayfs mount's root");
	o->attr = mount_attr_of(mnt_opts);
	parse_super_opts(super, o);
	return 0;
}

static int find_overlay(const char *rootfs, struct ovl_source *o, agentd_error *err)
{
	struct statx sx;
	if (statx(AT_FDCWD, rootfs, 0, STATX_MNT_ID, &sx) < 0)
		return agentd_error_errno(err, errno, "statx %s", rootfs);
	if (!(sx.stx_mask & STATX_MNT_ID) || !(sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
		return agentd_error_set(err, ENOSYS, "statx: no mount id (Linux 5.8+)");
	if (!(sx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
		return agentd_error_set(err, EINVAL, "not the root of a mount");
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return agentd_error_errno(err, errno, "/proc/self/mountinfo");
	_cleanup_free_ char *line = NULL, *mine = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		unsigned long long id, parent;
		if (sscanf(line, "%llu %llu", &id, &parent) != 2)
			continue;
		if (parent == sx.stx_mnt_id && id != parent)
			return agentd_error_set(err, EINVAL, "a mount lies below it");
		if (id == sx.stx_mnt_id && !mine)
			mine = xstrdup(line);
	}
	if (!mine)
		return agentd_error_set(err, ENOENT, "its mount is not in /proc/self/mountinfo");
	return parse_line(mine, o, err);
}

static int check_paths(const struct ovl_source *o, agentd_error *err)
{
	if (!o->lower.n)
		return agentd_error_set(err, EINVAL, "no lowerdir");
	if (!o->upper != !o->work)
		return agentd_error_set(err, EINVAL, "an upperdir without workdir");
	const agentd_strv *sets[] = {&o->lower, &o->data};
	for (size_t s = 0; s < ARRAY_SIZE(sets); s++)
		for (size_t i = 0; i < sets[s]->n; i++)
			if (sets[s]->v[i][0] != '/')
				return agentd_error_set(err, EINVAL,
							"layer %s: a relative path (mounted from "
							"the engine's directory)",
							sets[s]->v[i]);
	if (o->upper && (o->upper[0] != '/' || o->work[0] != '/'))
		return agentd_error_set(err, EINVAL, "upperdir %s: a relative path", o->upper);
	return 0;
}

/* The layers given as fds, the upper and work directories below one idmapped tree of their
 * common parent (overlayfs wants them on one mount). Each idmapped tree is held until the
 * superblock is made: closing the last fd of a detached tree dissolves it, and overlayfs
 * then cannot clone it ("failed to clone upperpath": EINVAL). */
struct ovl_trees {
	int *fd;
	size_t n;
};

static void trees_close(struct ovl_trees *t)
{
	for (size_t i = 0; i < t->n; i++)
		close(t->fd[i]);
	free(t->fd);
}

static int idmapped(struct ovl_trees *t, const char *path, int userns, agentd_error *err)
{
	int tree = idmap_tree(AT_FDCWD, path, userns, 0);
	if (tree < 0)
		return agentd_error_errno(err, -tree, "idmap the layer %s", path);
	t->fd = xrealloc(t->fd, (t->n + 1) * sizeof(int));
	t->fd[t->n++] = tree;
	return tree;
}

static int set_layer(int fs, const char *key, int fd, const char *path, agentd_error *err)
{
	if (fsconfig(fs, FSCONFIG_SET_FD, key, NULL, fd) < 0)
		return agentd_error_errno(err, errno, "overlay %s %s", key, path);
	return 0;
}

static int set_lowers(int fs, const char *key, const agentd_strv *dirs, int userns,
		      struct ovl_trees *t, agentd_error *err)
{
	for (size_t i = 0; i < dirs->n; i++) {
		int tree = idmapped(t, dirs->v[i], userns, err);
		if (tree < 0 || set_layer(fs, key, tree, dirs->v[i], err) < 0)
			return -1;
	}
	return 0;
}

/* dir below the idmapped parent, checked to be the very directory the engine's path names
 * (not one a mount below the parent hides). */
static int set_below_parent(int fs, int parent, size_t plen, const char *key, const char *path,
			    agentd_error *err)
{
	struct stat want, got;
	_cleanup_close_ int fd =
		openat_beneath(parent, path + plen, O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
			       RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV);
	if (fd < 0 || fstat(fd, &got) < 0 || stat(path, &want) < 0)
		return agentd_error_errno(err, errno, "overlay %s %s", key, path);
	if (want.st_dev != got.st_dev || want.st_ino != got.st_ino)
		return agentd_error_set(err, EXDEV, "overlay %s %s: a mount lies between it and "
						    "its parent",
					key, path);
	return set_layer(fs, key, fd, path, err);
}

static int set_upper(int fs, const struct ovl_source *o, int userns, struct ovl_trees *t,
		     agentd_error *err)
{
	/* the longest common directory of the two ("/a/c/diff", "/a/c/work": "/a/c") */
	size_t n = 0;
	for (size_t i = 0; o->upper[i] && o->upper[i] == o->work[i]; i++)
		if (o->upper[i] == '/')
			n = i;
	_cleanup_free_ char *parent = n ? xasprintf("%.*s", (int)n, o->upper) : xstrdup("/");
	int tree = idmapped(t, parent, userns, err);
	if (tree < 0)
		return agentd_error_prefix(err, "the upper layer's directory");
	/* a work directory of its own inside the engine's: two live overlays must not share
	 * one (each empties its work/ on mount; the engine's may hold a volatile mount's
	 * incompat/volatile, which refuses any other mount: EINVAL). Made as host root (0 on
	 * disk, the container's root's through the idmap), reused by a restart. */
	_cleanup_free_ char *work = xasprintf("%s/" OVL_OWN_WORKDIR, o->work);
	if (mkdir(work, 0700) < 0 && errno != EEXIST)
		return agentd_error_errno(err, errno, "overlay workdir %s", work);
	if (set_below_parent(fs, tree, n + 1, "upperdir", o->upper, err) < 0 ||
	    set_below_parent(fs, tree, n + 1, "workdir", work, err) < 0)
		return -1;
	return 0;
}

static int set_options(int fs, const struct ovl_source *o, agentd_error *err)
{
	for (size_t i = 0; i < o->opts.n; i++) {
		_cleanup_free_ char *key = xstrdup(o->opts.v[i]);
		char *value = strchr(key, '=');
		if (value)
			*value++ = '\0';
		if ((value ? fsconfig(fs, FSCONFIG_SET_STRING, key, value, 0)
			   : fsconfig(fs, FSCONFIG_SET_FLAG, key, NULL, 0)) < 0)
			return agentd_error_errno(err, errno, "overlay option %s", o->opts.v[i]);
	}
	return 0;
}

/* The superblock made with the container root's fs ids and the runtime's capabilities
 * (SECBIT_NO_SETUID_FIXUP: a nonzero fs uid would drop them), both restored after: overlayfs
 * keeps the creator's credentials for every write to its layers. */
static int create_as(int fs, uid_t uid, gid_t gid)
{
	int bits = prctl(PR_GET_SECUREBITS);
	if (bits < 0 || prctl(PR_SET_SECUREBITS, bits | SECBIT_NO_SETUID_FIXUP) < 0)
		return -1;
	uid_t old_uid = (uid_t)setfsuid(uid);
	gid_t old_gid = (gid_t)setfsgid(gid);
	int r = -1;
	if ((uid_t)setfsuid((uid_t)-1) != uid || (gid_t)setfsgid((gid_t)-1) != gid)
		errno = EPERM;
	else
		r = fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0);
	int e = errno;
	setfsuid(old_uid);
	setfsgid(old_gid);
	if (prctl(PR_SET_SECUREBITS, bits) < 0)
		abort(); /* the runtime must not go on with other securebits than its own */
	errno = e;
	return r;
}

/* Why the kernel refused, from the context's log ("e overlayfs: ..."), when it says. */
static int create_failed(int fs, int e, agentd_error *err)
{
	char msg[256];
	ssize_t n = read(fs, msg, sizeof(msg) - 1);
	msg[n > 0 ? n : 0] = '\0';
	msg[strcspn(msg, "\n")] = '\0';
	return agentd_error_errno(err, e, "create the overlay%s%s", n > 2 ? ": " : "",
				  n > 2 ? msg + 2 : "");
}

static int build(const struct ovl_source *o, int userns, uid_t uid, gid_t gid,
		 struct ovl_trees *t, agentd_error *err)
{
	_cleanup_close_ int fs = fsopen("overlay", FSOPEN_CLOEXEC);
	if (fs < 0)
		return agentd_error_errno(err, errno, "fsopen overlay");
	if (set_lowers(fs, "lowerdir+", &o->lower, userns, t, err) < 0 ||
	    set_lowers(fs, "datadir+", &o->data, userns, t, err) < 0 ||
	    (o->upper && set_upper(fs, o, userns, t, err) < 0) || set_options(fs, o, err) < 0)
		return -1;
	if (create_as(fs, uid, gid) < 0)
		return create_failed(fs, errno, err);
	int mnt = fsmount(fs, FSMOUNT_CLOEXEC, (unsigned)o->attr);
	if (mnt < 0)
		return agentd_error_errno(err, errno, "fsmount the overlay");
	struct stat st;
	if (fstat(mnt, &st) < 0 || st.st_uid != uid) {
		close(mnt);
		return agentd_error_set(err, EPERM, "the overlay's root is not the container "
						    "root's");
	}
	return mnt;
}

int ocirt_overlay_idmapped(const char *rootfs, int userns_fd, uid_t root_uid, gid_t root_gid,
			   agentd_error *err)
{
	struct stat st;
	if (stat(rootfs, &st) < 0)
		return agentd_error_errno(err, errno, "rebuild the overlay %s", rootfs);
	/* image files already the container's (an engine's own idmapped or chowned layers) */
	if (st.st_uid != 0)
		return agentd_error_set(err, EEXIST, "rebuild the overlay %s: its root is not "
						     "owned by host root",
					rootfs);
	struct ovl_source o = {0};
	int r = find_overlay(rootfs, &o, err);
	if (r == 0)
		r = check_paths(&o, err);
	struct ovl_trees trees = {0};
	if (r == 0)
		r = build(&o, userns_fd, root_uid, root_gid, &trees, err);
	trees_close(&trees);
	ovl_source_free(&o);
	if (r < 0)
		return agentd_error_prefix(err, "rebuild the overlay %s", rootfs);
	return r;
}
