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

/* ---------------------------------------------------------------- enforce.c */
/* The probe of b against spec: -1 + err (ENOTSUP) naming each item b cannot enforce and why,
 * unless opts allow degradation and each such item can be done without; then *relaxed is
 * spec without them (what the backend is given) and *unenforced lists "item: reason". */
int enforce_plan(agentd_backend *b, const agentd_spec *spec, const agentd_create_opts *opts,
		 agentd_spec *relaxed, agentd_strv *unenforced, agentd_error *err);
/* Could a backend with caps run spec (degrade: without the items it cannot enforce)? */
bool enforce_can_run(const agentd_backend_caps *caps, const agentd_spec *spec, bool degrade);
/* "memory limit 512M: <reason>; ..." for the items of spec caps does not enforce. */
void enforce_describe(const agentd_backend_caps *caps, const agentd_spec *spec, char *buf,
		      size_t n);
/* The same by item name only: "memory pids cpu". */
void enforce_item_names(const agentd_backend_caps *caps, const agentd_spec *spec, char *buf,
			size_t n);

/* ---------------------------------------------------------------- registry.c */
void registry_ensure_builtins(void);

#endif
