/* userns.c (issue 16: rt-ids): the host ids of the user namespace the floor adds, one slot
 * of OCIRT_USERNS_SIZE ids per container, leased through host_ids.c's pool so that no two
 * containers share the per-user kernel budgets (RLIMIT_NPROC, pending signals, inotify,
 * mqueue, pipe pages) nor own each other's files.
 *
 * The range: the first "agentd-runc:START:COUNT" of /etc/subuid and of /etc/subgid (COUNT
 * / OCIRT_USERNS_SIZE slots; a remainder is unused), else OCIRT_USERNS_SLOTS slots from
 * OCIRT_USERNS_BASE. Each verb is a process of its own, so the lease outlives create: its
 * file (OCIRT_USERNS_DIR/<first uid>) names the container's state dir (<--root>/<id>), and
 * state.json records the slot. A slot is skipped while that state dir exists and either
 * has no state.json yet (a create in progress holds the flock; one killed half-way left
 * it for delete --force) or records this slot; once it is gone the slot is reused only
 * when no host process has a uid in it (a create killed after the clone, a delete that
 * could not empty the cgroup). delete removes the file after the container's processes
 * are gone and its state dir is removed. */
#include "lib/runtime/verbs.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define FORGET_WAIT_MS 2000

#define WIDEN                                                                                      \
	"add \"agentd-runc:START:COUNT\" (COUNT a multiple of 65536, one slot per container) "     \
	"to /etc/subuid and /etc/subgid, or delete containers left behind"

/* The first "agentd-runc:START:COUNT" of a subordinate id file with at least one slot. */
static bool subid_slots(const char *path, unsigned long *start, unsigned long *slots)
{
	FILE *f = fopen(path, "re");
	char line[256];
	unsigned long s, n;
	bool found = false;
	while (f && !found && fgets(line, sizeof(line), f))
		if (sscanf(line, "agentd-runc:%lu:%lu", &s, &n) == 2 && s > 0 &&
		    n >= OCIRT_USERNS_SIZE && s + n - 1 < (unsigned long)UINT32_MAX) {
			*start = s;
			*slots = n / OCIRT_USERNS_SIZE;
			found = true;
		}
	if (f)
		fclose(f);
	return found;
}

/* The state dir the lease names still holds the slot: it exists and has no state.json
 * (creating, or a create that died half-way: delete --force removes it) or records this
 * slot; else, once it is gone, the slot is held while a process has one of its uids. */
static bool container_held(const char *holder, uid_t uid, void *arg)
{
	(void)arg;
	struct stat st;
	if (stat(holder, &st) == 0) {
		_cleanup_(freep) char *path = xasprintf("%s/state.json", holder);
		json_t *o = json_load_file(path, 0, NULL);
		json_t *slot = json_object_get(o, "agentd_userns_uid");
		bool ours =
		    !o || !json_is_integer(slot) || json_integer_value(slot) == (json_int_t)uid;
		json_decref(o);
		if (ours)
			return true;
	}
	return host_ids_any_process(uid, OCIRT_USERNS_SIZE);
}

void ocirt_userns_pool(struct host_id_pool *p)
{
	unsigned long us, un, gs, gn;
	*p = (struct host_id_pool){.dir = OCIRT_USERNS_DIR,
				   .uid_base = OCIRT_USERNS_BASE,
				   .gid_base = OCIRT_USERNS_BASE,
				   .slots = OCIRT_USERNS_SLOTS,
				   .slot_size = OCIRT_USERNS_SIZE,
				   .what = "slot of user namespace ids in the range",
				   .widen = WIDEN,
				   .held = container_held};
	/* both, or neither: a mix of the entry and the default could overlap */
	if (subid_slots("/etc/subuid", &us, &un) && subid_slots("/etc/subgid", &gs, &gn)) {
		p->uid_base = (uid_t)us;
		p->gid_base = (gid_t)gs;
		p->slots = (uint32_t)(un < gn ? un : gn);
	}
}

/* <--root>/<id>, absolute: what a lease names (two engines may share the range). */
static char *holder_of(const char *id)
{
	char root[PATH_MAX];
	return xasprintf("%s/%s", realpath(ocirt_g.root, root) ? root : ocirt_g.root, id);
}

int ocirt_userns_lease(struct ocirt_config *c, struct ocirt_state *st, struct host_ids *ids)
{
	struct host_id_pool p;
	agentd_error err = {0};
	ids->lease_fd = -1;
	if (!c->userns_added)
		return 0;
	ocirt_userns_pool(&p);
	_cleanup_(freep) char *holder = holder_of(st->id);
	if (host_ids_lease_from(&p, holder, ids, &err) < 0)
		return ocirt_fail("container %s: user namespace: %s", st->id, err.msg), -1;
	c->uid_maps[0].host_id = ids->uid;
	c->gid_maps[0].host_id = ids->gid;
	st->userns_uid = ids->uid;
	st->userns_gid = ids->gid;
	st->userns_leased = true;
	ocirt_debug("container %s: user namespace ids %u..%u (gids from %u)", st->id,
		    (unsigned)ids->uid, (unsigned)(ids->uid + OCIRT_USERNS_SIZE - 1),
		    (unsigned)ids->gid);
	return 0;
}

void ocirt_userns_keep(struct host_ids *ids, bool cleaned)
{
	struct host_id_pool p;
	ocirt_userns_pool(&p);
	host_ids_release_from(&p, ids, cleaned);
}

void ocirt_userns_forget(const struct ocirt_state *st)
{
	if (!st->userns_leased)
		return;
	struct host_id_pool p;
	ocirt_userns_pool(&p);
	_cleanup_(freep) char *holder = holder_of(st->id);
	/* the container's processes are killed and out of its cgroup, but may still be on
	 * their way out (a task leaves its cgroup before it is a zombie): a moment for them */
	for (int waited_ms = 0; host_ids_reap_from(&p, st->userns_uid, holder) > 0;
	     waited_ms += 10) {
		if (waited_ms >= FORGET_WAIT_MS) {
			ocirt_debug("container %s: user namespace ids %u.. kept: a process still "
				    "has one (the slot is reclaimed once it is gone)",
				    st->id, (unsigned)st->userns_uid);
			break;
		}
		struct timespec ts = {0, 10000000L};
		nanosleep(&ts, NULL);
	}
	/* and the leases earlier deletes had to leave (their slot's processes were still on
	 * their way out): gone once nothing of theirs is left, not only when a create needs
	 * that slot */
	host_ids_sweep_from(&p);
}
