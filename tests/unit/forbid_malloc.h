/* forbid_malloc.h: for tests of child-side code that must not allocate (it runs after a
 * clone of a possibly multithreaded process). Included by one test file each: it replaces
 * the allocator of that test binary, which then dies loudly (exit 99, naming what) when it
 * is entered between FORBID_MALLOC(1) and FORBID_MALLOC(0). Sanitizer builds keep their own
 * allocator and check nothing here. Define FORBID_MALLOC_WHAT before including it. */
#ifndef AGENTD_TEST_FORBID_MALLOC_H
#define AGENTD_TEST_FORBID_MALLOC_H

#include <stddef.h>
#include <unistd.h>

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);
static volatile int malloc_forbidden;
static void no_malloc_here(void)
{
	static const char m[] = "allocation inside " FORBID_MALLOC_WHAT "\n";
	if (write(2, m, sizeof(m) - 1) < 0) {
		/* dying anyway */
	}
	_exit(99);
}
void *malloc(size_t n)
{
	if (malloc_forbidden)
		no_malloc_here();
	return __libc_malloc(n);
}
void *calloc(size_t n, size_t m)
{
	if (malloc_forbidden)
		no_malloc_here();
	return __libc_calloc(n, m);
}
void *realloc(void *p, size_t n)
{
	if (malloc_forbidden)
		no_malloc_here();
	return __libc_realloc(p, n);
}
#define FORBID_MALLOC(on) (malloc_forbidden = (on))
#else
#define FORBID_MALLOC(on) ((void)0)
#endif

#endif
