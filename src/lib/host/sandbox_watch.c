/* sandbox_watch.c: a recursive inotify watch of a directory in a sandbox (the files API's
 * watch). Directories are found fd-relative, never through a symlink, and watched through
 * our own /proc/self/fd link; the inotify instance and its watches are made with the
 * sandbox's host uid as this thread's effective uid, so they count against its limits. */
#include "lib/host/host.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/fsuid.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define WATCH_MASK                                                                        \
	(IN_CREATE | IN_MODIFY | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF |  \
	 IN_EXCL_UNLINK | IN_ONLYDIR)
#define WATCH_DEFAULT_DIRS 1024
#define WATCH_MAX_DEPTH 256
#define WATCH_PENDING_MAX 4096	/* creates found by walking a new directory */

struct wdir {
	int wd;
	char *rel;			/* "" for the watched directory itself */
};

struct agentd_watch {
	int ifd;
	int root;			/* the watched directory (O_PATH) */
	uid_t uid;
	gid_t gid;
	unsigned max_dirs;
	struct wdir *dirs;
	size_t n_dirs;
	agentd_watch_event *pending;	/* queued before the next inotify event */
	size_t n_pending, pending_off, cap_pending;
	bool pending_lost;		/* a create past WATCH_PENDING_MAX: an overflow */
	char buf[65536] __attribute__((aligned(__alignof__(struct inotify_event))));
	size_t len, off;
	bool ended;
};

/* The effective ids of this thread only: glibc's setresuid would change every thread's,
 * the raw system call changes the caller's. Root keeps its real and saved uid 0, so the
 * way back (and its capabilities) stays open. The fs ids follow the effective ones on
 * each setresuid: those the caller had (the sandbox's, inside fsids_enter) come back
 * after, or the rest of a walk would run as root. */
struct eids {
	bool on;
	uid_t uid, fsuid;
	gid_t gid, fsgid;
	struct groups_save groups;
};

static struct eids become(uid_t uid, gid_t gid)
{
	struct eids old = {.on = geteuid() == 0 && uid != (uid_t)-1, .uid = geteuid(),
			   .gid = getegid()};
	if (old.on) {
		old.fsuid = (uid_t)setfsuid((uid_t)-1);
		old.fsgid = (gid_t)setfsgid((gid_t)-1);
		groups_drop(&old.groups);
		syscall(SYS_setresgid, -1, gid, -1);
		syscall(SYS_setresuid, -1, uid, -1);
	}
	return old;
}

static void unbecome(struct eids old)
{
	if (old.on) {
		syscall(SYS_setresuid, -1, old.uid, -1);
		syscall(SYS_setresgid, -1, old.gid, -1);
		setfsgid(old.fsgid);
		setfsuid(old.fsuid);
		groups_restore(&old.groups);
	}
}

static struct wdir *find_wd(agentd_watch *w, int wd)
{
	for (size_t i = 0; i < w->n_dirs; i++)
		if (w->dirs[i].wd == wd)
			return &w->dirs[i];
	return NULL;
}

static int add_watch(agentd_watch *w, int fd, const char *rel, agentd_error *err)
{
	char link[64];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	struct eids old = become(w->uid, w->gid);
	int wd = inotify_add_watch(w->ifd, link, WATCH_MASK);
	int e = errno;
	unbecome(old);
	if (wd < 0)
		return agentd_error_errno(err, e, "watch %s", *rel ? rel : ".");
	struct wdir *d = find_wd(w, wd);
	if (d) { /* the same directory under another name (moved): its new one */
		free(d->rel);
		d->rel = strdup(rel);
		return 0;
	}
	if (w->n_dirs >= w->max_dirs) {
		inotify_rm_watch(w->ifd, wd);
		return agentd_error_set(err, E2BIG, "more than %u directories to watch",
					w->max_dirs);
	}
	w->dirs = realloc(w->dirs, (w->n_dirs + 1) * sizeof(*w->dirs));
	w->dirs[w->n_dirs++] = (struct wdir){wd, strdup(rel)};
	return 0;
}

static void queue_create(agentd_watch *w, const char *rel, bool dir)
{
	if (w->n_pending >= WATCH_PENDING_MAX) {
		w->pending_lost = true;
		return;
	}
	/* Grown by doubling: an event is 4 KiB (its path), and a walk of thousands of new
	 * entries must not copy the queue once per entry. */
	if (w->n_pending == w->cap_pending) {
		w->cap_pending = w->cap_pending ? 2 * w->cap_pending : 64;
		w->pending = xrealloc(w->pending, w->cap_pending * sizeof(*w->pending));
	}
	agentd_watch_event *ev = &w->pending[w->n_pending++];
	memset(ev, 0, offsetof(agentd_watch_event, path));
	ev->kind = AGENTD_WATCH_CREATE;
	ev->type = dir ? AGENTD_FILE_DIRECTORY : AGENTD_FILE_REGULAR;
	snprintf(ev->path, sizeof(ev->path), "%s", rel);
}

/* Watch fd (taken) named rel and every directory beneath it; announce (creates) what is
 * found there when it is new. */
static int watch_tree(agentd_watch *w, int fd, const char *rel, int depth, bool announce,
		      agentd_error *err)
{
	if (depth > WATCH_MAX_DEPTH) {
		close(fd);
		return agentd_error_set(err, E2BIG, "%s: deeper than %d levels", rel,
					WATCH_MAX_DEPTH);
	}
	if (add_watch(w, fd, rel, err) < 0) {
		close(fd);
		return -1;
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return agentd_error_errno(err, errno, "%s", rel);
	}
	struct dirent *de;
	int r = 0;
	while (r == 0 && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char sub[4097];
		if ((size_t)snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", de->d_name) >=
		    sizeof(sub))
			continue;
		int cfd = openat(dirfd(d), de->d_name,
				 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (announce)
			queue_create(w, sub, cfd >= 0);
		if (cfd >= 0)
			r = watch_tree(w, cfd, sub, depth + 1, announce, err);
	}
	closedir(d);
	return r;
}

agentd_watch *sandbox_watch_new(int dir, uid_t uid, gid_t gid, unsigned max_dirs,
				agentd_error *err)
{
	agentd_watch *w = calloc(1, sizeof(*w));
	w->uid = uid;
	w->gid = gid;
	w->max_dirs = max_dirs ? max_dirs : WATCH_DEFAULT_DIRS;
	w->root = fcntl(dir, F_DUPFD_CLOEXEC, 3);
	struct eids old = become(uid, gid);
	w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	int e = errno;
	unbecome(old);
	if (w->ifd < 0 || w->root < 0) {
		agentd_error_errno(err, w->ifd < 0 ? e : errno, "inotify");
		close(dir);
		agentd_watch_free(w);
		return NULL;
	}
	struct fsid_save fo = fsids_enter(uid, gid);
	int r = watch_tree(w, dir, "", 0, false, err);
	fsids_leave(fo);
	if (r < 0) {
		agentd_watch_free(w);
		return NULL;
	}
	return w;
}

int agentd_watch_fd(const agentd_watch *w)
{
	return w->ifd;
}

const char *agentd_watch_kind_name(agentd_watch_kind k)
{
	static const char *const names[] = {"create", "modify", "delete",
					    "move",   "move",   "overflow"};
	return k <= AGENTD_WATCH_OVERFLOW ? names[k] : "?";
}

static int overflow(agentd_watch *w, agentd_watch_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->kind = AGENTD_WATCH_OVERFLOW;
	w->ended = true;
	return 1;
}

/* A new directory under the watch: watched too, what is already in it announced. */
static int follow_new_dir(agentd_watch *w, const char *rel)
{
	struct fsid_save fo = fsids_enter(w->uid, w->gid);
	int fd = openat_beneath(w->root, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0,
				RESOLVE_NO_SYMLINKS);
	agentd_error err = {0};
	int r = fd < 0 ? 0 : watch_tree(w, fd, rel, 1, true, &err);
	fsids_leave(fo);
	/* More than the bound: the client learns it missed some (an overflow), never a
	 * silently shorter list. */
	return (r < 0 && err.code == E2BIG) || w->pending_lost ? -1 : 0;
}

/* One inotify event as ours: 1 (ev filled), 0 nothing to say, -1 overflow. */
static int translate(agentd_watch *w, const struct inotify_event *ie, agentd_watch_event *ev)
{
	if (ie->mask & IN_Q_OVERFLOW)
		return -1;
	struct wdir *d = find_wd(w, ie->wd);
	if (!d)
		return 0;
	if (ie->mask & IN_IGNORED) {
		free(d->rel);
		*d = w->dirs[--w->n_dirs];
		return 0;
	}
	memset(ev, 0, offsetof(agentd_watch_event, path));
	bool top = !*d->rel;
	if (ie->mask & IN_DELETE_SELF) {
		if (!top)
			return 0; /* its parent's IN_DELETE said it */
		ev->kind = AGENTD_WATCH_DELETE;
		ev->type = AGENTD_FILE_DIRECTORY;
		strcpy(ev->path, ".");
		w->ended = true;
		return 1;
	}
	if (!ie->len)
		return 0;
	if ((size_t)snprintf(ev->path, sizeof(ev->path), "%s%s%s", d->rel, top ? "" : "/",
			     ie->name) >= sizeof(ev->path))
		return 0;
	ev->type = ie->mask & IN_ISDIR ? AGENTD_FILE_DIRECTORY : AGENTD_FILE_REGULAR;
	ev->cookie = ie->cookie;
	ev->kind = ie->mask & IN_CREATE	       ? AGENTD_WATCH_CREATE
		   : ie->mask & IN_MODIFY      ? AGENTD_WATCH_MODIFY
		   : ie->mask & IN_DELETE      ? AGENTD_WATCH_DELETE
		   : ie->mask & IN_MOVED_FROM  ? AGENTD_WATCH_MOVE_FROM
					       : AGENTD_WATCH_MOVE_TO;
	if ((ie->mask & (IN_CREATE | IN_MOVED_TO)) && (ie->mask & IN_ISDIR) &&
	    follow_new_dir(w, ev->path) < 0)
		return -1;
	return 1;
}

int agentd_watch_next(agentd_watch *w, agentd_watch_event *ev, agentd_error *err)
{
	for (;;) {
		if (w->pending_off < w->n_pending) {
			*ev = w->pending[w->pending_off++];
			if (w->pending_off == w->n_pending)
				w->pending_off = w->n_pending = 0;
			return 1;
		}
		if (w->ended)
			return 0;
		if (w->off >= w->len) {
			ssize_t n = read(w->ifd, w->buf, sizeof(w->buf));
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return 0;
			if (n <= 0)
				return agentd_error_errno(err, n < 0 ? errno : EIO, "inotify");
			w->len = (size_t)n;
			w->off = 0;
		}
		const struct inotify_event *ie = (const void *)(w->buf + w->off);
		w->off += sizeof(*ie) + ie->len;
		int r = translate(w, ie, ev);
		if (r < 0)
			return overflow(w, ev);
		if (r > 0)
			return 1;
	}
}

void agentd_watch_free(agentd_watch *w)
{
	if (!w)
		return;
	if (w->ifd >= 0)
		close(w->ifd);
	if (w->root >= 0)
		close(w->root);
	for (size_t i = 0; i < w->n_dirs; i++)
		free(w->dirs[i].rel);
	free(w->dirs);
	free(w->pending);
	free(w);
}
