/* core.h: the library's top (src/lib/core/): the typed spec and its presets, the policy
 * JSON, the output JSON, the registry of backends and the public API that dispatches to
 * them. Includes backends/ and everything below. */
#ifndef AGENTD_CORE_H
#define AGENTD_CORE_H

#include "lib/backends/backends.h"

/* ---------------------------------------------------------------- spec.c
 * One table of the resource limits, shared by the validator, the JSON parser and emitter,
 * so a limit added here is parsed, range-checked and emitted everywhere at once. */
struct spec_limit_field {
	const char *name;		/* JSON key under "limits" */
	size_t offset;			/* into agentd_limits */
	bool is_u32;			/* uint32_t field, else uint64_t */
	uint64_t min, max;		/* inclusive; max is at most INT64_MAX (a JSON integer) */
	const char *expect;		/* "expected integer >= 1048576" */
};
extern const struct spec_limit_field spec_limit_fields[];
extern const size_t spec_limit_fields_n;
uint64_t spec_limit_get(const agentd_limits *l, const struct spec_limit_field *f);
void spec_limit_set(agentd_limits *l, const struct spec_limit_field *f, uint64_t v);
/* run_as ids: -1 (default) or 0..SPEC_ID_MAX ((uid_t)-1 is "no change" to the kernel). */
#define SPEC_ID_MAX 4294967294LL
/* Deep equality; environment and labels compare as maps. */
bool spec_equal(const agentd_spec *a, const agentd_spec *b);

/* ---------------------------------------------------------------- registry.c */
void registry_ensure_builtins(void);

#endif
