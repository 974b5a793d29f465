/* files.c: GP_FILE_* — files in the execs' root, each path resolved inside it
 * (openat2 RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, the last component never followed
 * where it is created or removed), transfers bounded (T_MAX_BYTES, credit), removal depth
 * bounded. */
#include "guest/guest.h"

#include "common/kernel.h"

#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 64

struct freq {
	char path[GP_MAX_STRING + 1];
	uint64_t mode, uid, gid; /* NOT_GIVEN: a default, or left as they are */
	uint64_t max_bytes, recursive, size;
};

static const struct u64_field u64_fields[] = {
    {GP_T_MODE, offsetof(struct freq, mode)},
    {GP_T_UID, offsetof(struct freq, uid)},
    {GP_T_GID, offsetof(struct freq, gid)},
    {GP_T_MAX_BYTES, offsetof(struct freq, max_bytes)},
    {GP_T_RECURSIVE, offsetof(struct freq, recursive)},
    {GP_T_SIZE, offsetof(struct freq, size)},
};

struct xfer {
	uint32_t chan;
	int fd;
	uint64_t credit, sent, max, mode;
};

static int open_in_root(const char *path, int flags, uint64_t resolve_extra)
{
	int root = open(setup_exec_root(), O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return -errno;
	struct open_how how = {.flags = (uint64_t)flags | O_CLOEXEC,
			       .mode = 0,
			       .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | resolve_extra};
	int fd = (int)syscall(SYS_openat2, root, path, &how, sizeof(how));
	int e = errno;
	close(root);
	return fd < 0 ? -e : fd;
}

/* The parent directory of path (an O_PATH fd) and its last component in *name. */
static int open_parent(const char *path, char *name, size_t cap)
{
	char dir[GP_MAX_STRING + 1];
	snprintf(dir, sizeof(dir), "%s", path);
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		dir[--n] = '\0';
	char *slash = strrchr(dir, '/');
	if (!slash)
		return -EINVAL;
	snprintf(name, cap, "%s", slash + 1);
	if (!name[0] || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -EINVAL; /* "/", or a name that is not one entry */
	slash[slash == dir ? 1 : 0] = '\0';
	return open_in_root(dir, O_PATH | O_DIRECTORY, 0);
}

static int parse(uint32_t chan, const struct gp_hdr *h, const uint8_t *p, struct freq *q)
{
	struct gp_reader r;
	struct gp_field f;
	int rc;
	memset(q, 0, sizeof(*q));
	q->mode = q->uid = q->gid = NOT_GIVEN;
	gp_r_init(&r, p, h->len);
	while ((rc = gp_r_next(&r, &f)) == 1) {
		if (f.tag == GP_T_PATH) {
			if (field_str(chan, &f, q->path, sizeof(q->path), "FILE path") < 0)
				return -1;
			continue;
		}
		if (field_u64_table(chan, &f, u64_fields,
				    sizeof(u64_fields) / sizeof(u64_fields[0]), q,
				    "FILE field") < 0)
			return -1;
	}
	if (rc < 0) {
		send_error(chan, EPROTO, "%s: malformed fields", gp_type_name(h->type));
		return -1;
	}
	if (q->path[0] != '/') {
		send_error(chan, EINVAL, "%s: the path must be absolute", gp_type_name(h->type));
		return -1;
	}
	if ((q->mode != NOT_GIVEN && q->mode > 07777) ||
	    (q->uid != NOT_GIVEN && q->uid > 0xfffffffeu) ||
	    (q->gid != NOT_GIVEN && q->gid > 0xfffffffeu)) {
		send_error(chan, EINVAL, "%s: mode or owner out of range", gp_type_name(h->type));
		return -1;
	}
	return 0;
}

static void stat_answer(uint32_t chan, int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		send_error(chan, errno, "FILE_STAT: %s", strerror(errno));
		return;
	}
	struct gp_writer w;
	fields_begin(&w);
	gp_w_u64(&w, GP_T_MODE, st.st_mode);
	gp_w_u64(&w, GP_T_SIZE, (uint64_t)st.st_size);
	gp_w_u64(&w, GP_T_UID, st.st_uid);
	gp_w_u64(&w, GP_T_GID, st.st_gid);
	gp_w_u64(&w, GP_T_MTIME_NS,
		 (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec);
	send_fields(GP_OK, chan, &w);
}

static void list_answer(uint32_t chan, int fd)
{
	DIR *d = fdopendir(fd);
	if (!d) {
		send_error(chan, errno, "FILE_LIST: %s", strerror(errno));
		close(fd);
		return;
	}
	struct gp_writer w;
	struct dirent *e;
	fields_begin(&w);
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		struct gp_writer before = w;
		gp_w_str(&w, GP_T_NAME, e->d_name);
		if (gp_w_done(&w) < 0) { /* a full frame: the names that fit */
			w = before;
			break;
		}
	}
	closedir(d);
	send_fields(GP_OK, chan, &w);
}

/* Removes name in dirfd, a directory's contents first when recursive (depth bounded, no
 * symlink followed: each level is opened O_NOFOLLOW beneath the last). */
static int remove_at(int parent, const char *name, bool recursive, int depth)
{
	if (unlinkat(parent, name, 0) == 0)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	if (recursive) {
		if (depth >= MAX_DEPTH)
			return -ELOOP;
		int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		DIR *d = fdopendir(fd);
		if (!d) {
			close(fd);
			return -errno;
		}
		struct dirent *e;
		int rc = 0;
		while (rc == 0 && (e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				rc = remove_at(dirfd(d), e->d_name, true, depth + 1);
		closedir(d);
		if (rc < 0)
			return rc;
	}
	return unlinkat(parent, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

static void owner_mode(int fd, const struct freq *q)
{
	if ((q->uid != NOT_GIVEN || q->gid != NOT_GIVEN) &&
	    fchown(fd, q->uid != NOT_GIVEN ? (uid_t)q->uid : (uid_t)-1,
		   q->gid != NOT_GIVEN ? (gid_t)q->gid : (gid_t)-1) < 0)
		glog("chown: %s", strerror(errno));
	if (q->mode != NOT_GIVEN)
		fchmod(fd, (mode_t)q->mode);
}

/* Sends what credit allows of a FILE_GET; FILE_END after the last byte. */
static void get_pump(struct chan *c)
{
	static uint8_t buf[GP_MAX_PAYLOAD];
	struct xfer *x = c->obj;
	while (x->credit) {
		size_t want = x->credit < sizeof(buf) ? (size_t)x->credit : sizeof(buf);
		ssize_t n = read(x->fd, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			send_error(x->chan, errno, "FILE_GET: read: %s", strerror(errno));
			break;
		}
		if (n == 0) {
			struct gp_writer w;
			fields_begin(&w);
			gp_w_u64(&w, GP_T_SIZE, x->sent);
			gp_w_u64(&w, GP_T_MODE, x->mode);
			send_fields(GP_FILE_END, x->chan, &w);
			break;
		}
		if (x->sent + (uint64_t)n > x->max) {
			send_error(x->chan, EFBIG, "FILE_GET: the file grew past %llu bytes",
				   (unsigned long long)x->max);
			break;
		}
		send_frame(GP_FILE_DATA, x->chan, buf, (size_t)n);
		x->sent += (uint64_t)n;
		x->credit -= (uint64_t)n;
	}
	if (x->credit == 0)
		return; /* more when the host grants it */
	close(x->fd);
	free(x);
	chan_free(c);
}

static void start_get(uint32_t chan, const struct freq *q)
{
	int fd = open_in_root(q->path, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = fd < 0 ? -fd : errno;
		send_error(chan, e, "FILE_GET %s: %s", q->path, strerror(e));
		if (fd >= 0)
			close(fd);
		return;
	}
	uint64_t max = q->max_bytes ? q->max_bytes : UINT64_MAX;
	int err = !S_ISREG(st.st_mode) ? EINVAL : (uint64_t)st.st_size > max ? EFBIG : 0;
	struct xfer *x = err ? NULL : calloc(1, sizeof(*x));
	struct chan *c = x ? chan_new(chan, CHAN_FILE_GET, x) : NULL;
	if (!c) {
		err = err ? err : ENOMEM;
		send_error(chan, err, "FILE_GET %s: %s", q->path,
			   err == EINVAL ? "not a regular file" : strerror(err));
		free(x);
		close(fd);
		return;
	}
	*x = (struct xfer){.chan = chan,
			   .fd = fd,
			   .credit = GP_INITIAL_CREDIT,
			   .max = max,
			   .mode = st.st_mode & 07777};
	get_pump(c);
}

static void start_put(uint32_t chan, const struct freq *q)
{
	char name[256];
	int dir = open_parent(q->path, name, sizeof(name)), fd = -1;
	if (dir >= 0) {
		/* O_NONBLOCK: a FIFO the sandbox left there (no reader) fails at once instead of
		 * holding PID 1, and with it every exec's deadline, until one comes */
		fd = openat(dir, name,
			    O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
			    q->mode != NOT_GIVEN ? (mode_t)q->mode : 0644);
		fd = fd < 0 ? -errno : fd;
		close(dir);
	} else {
		fd = dir;
	}
	struct stat st;
	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
		close(fd);
		fd = -EINVAL;
	}
	struct xfer *x = fd >= 0 ? calloc(1, sizeof(*x)) : NULL;
	if (!x || !chan_new(chan, CHAN_FILE_PUT, x)) {
		int e = fd < 0 ? -fd : ENOMEM;
		send_error(chan, e, "FILE_PUT %s: %s", q->path, strerror(e));
		free(x);
		if (fd >= 0)
			close(fd);
		return;
	}
	owner_mode(fd, q);
	*x = (struct xfer){.chan = chan, .fd = fd};
}

void files_request(uint32_t chan, const struct gp_hdr *h, const uint8_t *p)
{
	static struct freq q;
	char name[256];
	int fd, rc;
	if (parse(chan, h, p, &q) < 0)
		return;
	switch (h->type) {
	case GP_FILE_GET:
		start_get(chan, &q);
		return;
	case GP_FILE_PUT:
		start_put(chan, &q);
		return;
	case GP_FILE_STAT:
	case GP_FILE_LIST:
		fd = open_in_root(
		    q.path, h->type == GP_FILE_STAT ? O_PATH | O_NOFOLLOW : O_RDONLY | O_DIRECTORY,
		    0);
		if (fd < 0) {
			send_error(chan, -fd, "%s %s: %s", gp_type_name(h->type), q.path,
				   strerror(-fd));
		} else if (h->type == GP_FILE_STAT) {
			stat_answer(chan, fd);
			close(fd);
		} else {
			list_answer(chan, fd);
		}
		return;
	case GP_FILE_REMOVE:
	case GP_FILE_MKDIR:
		fd = open_parent(q.path, name, sizeof(name));
		if (fd < 0) {
			rc = fd;
		} else if (h->type == GP_FILE_REMOVE) {
			rc = remove_at(fd, name, q.recursive != 0, 0);
		} else if (mkdirat(fd, name, q.mode != NOT_GIVEN ? (mode_t)q.mode : 0755) < 0) {
			rc = -errno;
		} else {
			int d = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			rc = d < 0 ? -errno : 0;
			if (d >= 0) {
				owner_mode(d, &q);
				close(d);
			}
		}
		if (fd >= 0)
			close(fd);
		if (rc < 0)
			send_error(chan, -rc, "%s %s: %s", gp_type_name(h->type), q.path,
				   strerror(-rc));
		else
			send_ok(chan);
		return;
	default:
		return;
	}
}

void files_frame(struct chan *c, const struct gp_hdr *h, const uint8_t *p)
{
	struct xfer *x = c->obj;
	struct gp_reader r;
	struct gp_field f;
	uint64_t v;
	if (c->kind == CHAN_FILE_GET) {
		if (h->type != GP_CREDIT)
			return;
		gp_r_init(&r, p, h->len);
		while (gp_r_next(&r, &f) == 1)
			if (f.tag == GP_T_BYTES && gp_f_u64(&f, &v) == 0)
				x->credit =
				    x->credit + v > (1ull << 40) ? 1ull << 40 : x->credit + v;
		get_pump(c);
		return;
	}
	if (h->type == GP_FILE_DATA) {
		size_t done = 0;
		while (done < h->len) {
			ssize_t n = write(x->fd, p + done, h->len - done);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				int e = n < 0 ? errno : EIO;
				send_error(x->chan, e, "FILE_PUT: write: %s", strerror(e));
				goto end;
			}
			done += (size_t)n;
		}
		x->sent += h->len;
		send_credit(x->chan, h->len);
		return;
	}
	if (h->type != GP_FILE_END) {
		send_error(x->chan, EPROTO, "%s in a FILE_PUT", gp_type_name(h->type));
		goto end;
	}
	uint64_t size = x->sent;
	gp_r_init(&r, p, h->len);
	while (gp_r_next(&r, &f) == 1)
		if (f.tag == GP_T_SIZE && gp_f_u64(&f, &v) == 0)
			size = v;
	if (size != x->sent)
		send_error(x->chan, EIO, "FILE_PUT: %llu bytes received, %llu announced",
			   (unsigned long long)x->sent, (unsigned long long)size);
	else if (fsync(x->fd) < 0)
		send_error(x->chan, errno, "FILE_PUT: fsync: %s", strerror(errno));
	else {
		struct gp_writer w;
		fields_begin(&w);
		gp_w_u64(&w, GP_T_SIZE, x->sent);
		send_fields(GP_OK, x->chan, &w);
	}
end:
	close(x->fd);
	free(x);
	chan_free(c);
}
