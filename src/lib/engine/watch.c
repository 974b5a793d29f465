/* watch.c: what the host measures of a sandbox while one of its commands runs — the CPU
 * budget shared by all its processes (cgroup accounting) and its writable scratch (fstatfs
 * on an fd the host holds), never anything the sandbox reports about itself. */
#include "lib/engine/engine.h"

#include <linux/magic.h>
#include <sys/statfs.h>

/* Looks at the scratch at least this often, so a scratch filled and emptied again within
 * one command is seen full unless it was shorter than this. */
#define SCRATCH_EVERY_MS 250
/* The CPU budget is looked at when the sandbox could have spent what remains on every CPU,
 * but not more often than this, nor less. */
#define CPU_MIN_MS 10
#define CPU_MAX_MS 1000

static bool cgroup_spent(struct cgroup *cg, uint64_t *ms)
{
	return cg && cgroup_cpu_ms(cg, ms) == 0;
}

uint64_t exec_cpu_remaining_ms(const exec_request *req)
{
	uint64_t spent;
	if (!cgroup_spent(req->cg ? req->cg : req->budget_cg, &spent))
		spent = req->cpu_spent_ms;
	return req->cpu_limit_ms > spent ? req->cpu_limit_ms - spent : 1;
}

/* The sandbox's own bytes on its scratch: the tmpfs was sized to hold write_quota
 * (rounded to pages) beside agentd's files, whose pages are the rest. false when fd is
 * not such a tmpfs. */
struct scratch_state {
	uint64_t bytes;
	bool full;
};

static bool scratch_read(const struct exec_job *j, struct scratch_state *st)
{
	const exec_request *req = j->req;
	int fd = req->scratch_fd ? req->scratch_fd(req->scratch_arg) : -1;
	struct statfs sf;
	if (fd < 0 || fstatfs(fd, &sf) < 0 || sf.f_type != TMPFS_MAGIC || sf.f_bsize <= 0)
		return false;
	uint64_t bs = (uint64_t)sf.f_bsize;
	uint64_t quota = (req->write_quota + bs - 1) / bs * bs;
	uint64_t total = (uint64_t)sf.f_blocks * bs, used = total - (uint64_t)sf.f_bfree * bs;
	if (total < quota)
		return false;
	uint64_t agentd_own = total - quota;
	st->bytes = used > agentd_own ? used - agentd_own : 0;
	/* tmpfs fills page by page: a write that did not fit left it without a free page;
	 * out of inodes is the same ENOSPC */
	st->full = quota > 0 && (sf.f_bfree == 0 || sf.f_ffree == 0);
	return true;
}

/* Full counts once this command had room: a scratch an earlier exec left full is not
 * this one's limit. */
static void scratch_note(struct exec_job *j, const struct scratch_state *st)
{
	if (!st->full)
		j->w.scratch_room = true;
	else if (j->w.scratch_room)
		j->w.scratch_full = true;
}

static void scratch_look(struct exec_job *j)
{
	struct scratch_state st;
	if (scratch_read(j, &st))
		scratch_note(j, &st);
}

static uint64_t cpu_next_ms(const struct exec_job *j, uint64_t spent)
{
	static long ncpu;
	if (!ncpu)
		ncpu = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
	uint64_t left = j->req->cpu_limit_ms > spent ? j->req->cpu_limit_ms - spent : 0;
	uint64_t ms = left / (uint64_t)ncpu;
	return ms < CPU_MIN_MS ? CPU_MIN_MS : ms > CPU_MAX_MS ? CPU_MAX_MS : ms;
}

static void schedule(struct exec_job *j, uint64_t cpu_ms)
{
	uint64_t in = j->req->scratch_fd ? SCRATCH_EVERY_MS : 0;
	if (j->w.cpu && (!in || cpu_ms < in))
		in = cpu_ms;
	j->w.next_ms = in ? now_ms_monotonic() + in : 0;
}

void watch_start(struct exec_job *j, bool fresh)
{
	uint64_t spent = 0;
	struct scratch_state st;
	memset(&j->w, 0, sizeof(j->w));
	j->w.cpu = j->req->cpu_limit_ms && cgroup_spent(exec_budget_cg(j), &spent);
	/* A sandbox made for this command has an empty scratch (what agentd put there is not
	 * the sandbox's); reading it now could count what the command already wrote. */
	j->w.scratch_room = fresh;
	if (!fresh && scratch_read(j, &st)) {
		j->w.scratch_known = true;
		j->w.scratch0 = st.bytes;
		scratch_note(j, &st);
	}
	schedule(j, j->w.cpu ? cpu_next_ms(j, spent) : 0);
}

int watch_wait_ms(const struct exec_job *j)
{
	if (!j->w.next_ms)
		return -1;
	uint64_t now = now_ms_monotonic();
	return j->w.next_ms > now ? (int)(j->w.next_ms - now) : 0;
}

bool watch_due(struct exec_job *j)
{
	if (!j->w.next_ms || now_ms_monotonic() < j->w.next_ms)
		return false;
	scratch_look(j);
	uint64_t spent = 0;
	if (j->w.cpu && cgroup_spent(exec_budget_cg(j), &spent) && spent >= j->req->cpu_limit_ms) {
		j->w.cpu_spent = true;
		j->w.next_ms = 0;
		return true;
	}
	schedule(j, j->w.cpu ? cpu_next_ms(j, spent) : 0);
	return false;
}

void watch_finish(struct exec_job *j)
{
	struct scratch_state st;
	if (!scratch_read(j, &st))
		return;
	scratch_note(j, &st);
	uint64_t before = j->w.scratch_known ? j->w.scratch0 : 0;
	if (st.bytes > before)
		j->out->usage.bytes_written += st.bytes - before;
}
