/* trace.c: where the time of one run goes (`agentd run --trace-timing`): named marks with
 * CLOCK_MONOTONIC stamps, taken by the caller, its threads and the processes it clones
 * (a sandbox's init, the command before its execve) into one shared page, printed at the
 * end. Off unless enabled: a mark is then one load and a branch. */
#include "common/common.h"

#include <sys/mman.h>
#include <time.h>

#define TRACE_MAX 64

struct trace_page {
	uint32_t n;			/* marks taken (may exceed TRACE_MAX: the rest are lost) */
	uint32_t pad;
	struct {
		const char *name;	/* a string literal: same address in every clone */
		uint64_t ns;
		int pid;
	} m[TRACE_MAX];
};

static struct trace_page *page;	/* MAP_SHARED: survives fork and clone without CLONE_VM */

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int trace_enable(void)
{
	if (page)
		return 0;
	void *p = mmap(NULL, sizeof(struct trace_page), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	__atomic_store_n(&page, (struct trace_page *)p, __ATOMIC_RELEASE);
	return 0;
}

bool trace_enabled(void)
{
	return __atomic_load_n(&page, __ATOMIC_ACQUIRE) != NULL;
}

void trace_mark(const char *name)
{
	struct trace_page *p = __atomic_load_n(&page, __ATOMIC_ACQUIRE);
	if (!p)
		return;
	uint32_t i = __atomic_fetch_add(&p->n, 1, __ATOMIC_RELAXED);
	if (i >= TRACE_MAX)
		return;
	p->m[i].ns = mono_ns();
	p->m[i].pid = (int)getpid();
	__atomic_store_n(&p->m[i].name, name, __ATOMIC_RELEASE);
}

static int by_time(const void *a, const void *b)
{
	const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

void trace_print(FILE *f)
{
	struct trace_page *p = __atomic_load_n(&page, __ATOMIC_ACQUIRE);
	if (!p)
		return;
	uint32_t n = __atomic_load_n(&p->n, __ATOMIC_ACQUIRE);
	if (n > TRACE_MAX)
		n = TRACE_MAX;
	/* ns first, so sorting the copies sorts by time */
	struct row {
		uint64_t ns;
		const char *name;
		int pid;
	} rows[TRACE_MAX];
	uint32_t k = 0;
	for (uint32_t i = 0; i < n; i++) {
		const char *name = __atomic_load_n(&p->m[i].name, __ATOMIC_ACQUIRE);
		if (!name)
			continue;	/* a mark still being written by another process */
		rows[k++] = (struct row){p->m[i].ns, name, p->m[i].pid};
	}
	qsort(rows, k, sizeof(rows[0]), by_time);
	int self = (int)getpid();
	for (uint32_t i = 0; i < k; i++)
		fprintf(f, "trace: %9.3f ms %+8.3f ms  %-7s %s\n",
			(double)(rows[i].ns - rows[0].ns) / 1e6,
			i ? (double)(rows[i].ns - rows[i - 1].ns) / 1e6 : 0.0,
			rows[i].pid == self ? "agentd" : "child", rows[i].name);
}
