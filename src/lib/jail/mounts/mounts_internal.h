/* mounts_internal.h: what the files of mounts/ share: the parent's entries and builder, the
 * /etc set, and the helpers one file defines for the others. Not for use outside mounts/. */
#ifndef AGENTD_MOUNTS_INTERNAL_H
#define AGENTD_MOUNTS_INTERNAL_H

#include "lib/jail/jail.h"

#include <sys/stat.h>

#define ATTR_RO (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
#define ATTR_RW (MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)

/* ---------------------------------------------------------------- plan.c */

const char *mount_op_verb(enum mount_op_kind k); /* "bind", "tmpfs"...: messages, describe */
struct mount_op *plan_push(struct mount_plan *p, enum mount_op_kind k, const char *target);
void op_set_data(struct mount_op *op, const char *data, size_t len);
void plan_append(struct mount_plan *dst, struct mount_plan *src); /* src's ops moved */
/* Canonical spelling of an absolute path; false for ".." or no room. */
bool path_normalize(const char *in, char *out, size_t size);
bool path_within(const char *p, const char *dir); /* p is dir or below it */
bool path_below(const char *p, const char *dir);  /* p is strictly below dir */
size_t path_depth(const char *p);		  /* "/" is 0, "/a/b" is 2 */

/* ---------------------------------------------------------------- entries (parent side) */

/* What a mount offers the entries below it. OWN: ours, mount points are created there.
 * HOST: a host directory, which must already hold them (agentd creates nothing on the
 * host). FIXED: holds them by construction (the cache, proc). NONE: a file. */
enum tree { TREE_NONE, TREE_OWN, TREE_HOST, TREE_FIXED };

/* Scratch binds get their source (a directory of the scratch tmpfs) once the base is
 * chosen; the flag never leaves mount_plan_prepare. */
#define OPF_SCRATCH_SOURCE 0x80000000u

struct entry {
	struct mount_op op;
	enum tree tree;
	bool mount;   /* a mount (a tree for the entries below), else created */
	bool dir;     /* the mount point is a directory */
	bool user;    /* from the spec: replaces system entries at or below it */
	bool scratch; /* workdir, /tmp, /dev/shm: replaced only by an equal target */
	bool dropped;
	size_t seq;	/* insertion order: ties of the depth sort keep it */
	char label[48]; /* JSON path for messages ("bind_mounts[1].target") */
};

struct builder {
	struct entry *v;
	size_t n, cap;
	struct mount_plan body;
	agentd_strv made;    /* directories created in our own trees */
	agentd_strv runtime; /* host trees bound read-only at the same path (/usr...) */
	agentd_error *err;
};

/* plan_entries.c */
struct entry *add_entry(struct builder *b, enum mount_op_kind k, const char *target,
			const char *source);
struct entry *add_symlink(struct builder *b, const char *target, const char *link);
struct entry *add_file(struct builder *b, const char *target, const char *data, size_t len);
struct entry *add_ro_bind(struct builder *b, const char *target, const char *source, bool dir);
void add_runtime(struct builder *b, const agentd_strv *sys);
void add_proc(struct builder *b);
void add_dev(struct builder *b);
void add_scratch(struct builder *b, const char *workdir);
int add_user_binds(struct builder *b, const agentd_spec *spec);

/* plan_order.c: -1 with b->err set when a mount point cannot be made or is not there */
int emit_all(struct builder *b);
char *choose_base(const struct mount_plan *body, const char *want, agentd_error *err);

/* ---------------------------------------------------------------- /etc and the cache */

enum etc_kind { ETC_FILE, ETC_DIR, ETC_LINK, ETC_GEN };
struct etc_item {
	enum etc_kind kind;
	char *path;	/* /etc/... in the sandbox */
	char *source;	/* host file or dir (FILE, DIR) */
	char *data;	/* LINK: symlink target; GEN: content */
	struct stat st; /* FILE: of source, for the cache fingerprint */
};
struct etc_set {
	struct etc_item *v;
	size_t n;
};

/* etc.c */
void etc_collect(struct builder *b, const char *wd, const struct mount_plan_opts *o,
		 const agentd_strv *sys, struct etc_set *out);
void etc_set_free(struct etc_set *s);
void add_etc(struct builder *b, const struct etc_set *s, const char *pack);

/* cache.c */
char *cache_variant(const char *cache_dir, const struct etc_set *s, char *why, size_t wlen);

/* image.c (issue 13): the image root's prologue, after the scratch's directories; takes
 * the body's creations in the root's own tree into its skeleton. */
void push_image_root(struct mount_plan *p, const struct mount_plan_opts *o,
		     struct mount_plan *body);

/* ---------------------------------------------------------------- copyup.c (child side)
 * issue 16: rt-gaps. What the directory src holds copied into dst (a fresh tmpfs's root),
 * never through a link nor into another mount; 0 or -errno. */
int copy_up_tree(int src, int dst);
/* in's bytes from where it is appended to out, through a stack buffer, at most max of them
 * (-EFBIG past it, nothing of that read written); *done: how many. 0 or -errno. Also the
 * cache's (cache.c). */
int copy_fd_bytes(int in, int out, off_t max, off_t *done);

/* ---------------------------------------------------------------- legacy.c (child side) */

/* attr added to the mount at path by MS_REMOUNT with the flags it has (0 or -errno). */
int remount_attr(const char *path, uint64_t attr);

#endif
