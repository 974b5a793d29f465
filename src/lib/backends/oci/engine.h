/* engine.h: the oci backend's engine driver (engine.c): sandboxes as long-lived containers
 * of a container engine, docker or podman, driven through its CLI. Includes backends.h. */
#ifndef AGENTD_OCI_ENGINE_H
#define AGENTD_OCI_ENGINE_H

#include "lib/backends/backends.h"

enum oci_engine_kind { OCI_ENGINE_DOCKER = 0, OCI_ENGINE_PODMAN };

struct oci_engine;

/* The engine named kind: its CLI found on PATH ($AGENTD_DOCKER / $AGENTD_PODMAN name
 * another binary), its global options (docker: -H $AGENTD_DOCKER_HOST when set, else the
 * CLI's own DOCKER_HOST; podman: --runtime runc where crun refuses the cgroup layout,
 * --root $AGENTD_PODMAN_ROOT and --runroot $AGENTD_PODMAN_RUNROOT when set). Never fails:
 * a missing CLI is the probe's to report. */
struct oci_engine *oci_engine_new(enum oci_engine_kind kind);
void oci_engine_free(struct oci_engine *e);
const char *oci_engine_name(const struct oci_engine *e);	/* "docker", "podman" */

/* probe: the engine answers `info` (cached a few seconds), and what its hardening
 * enforces here. */
int oci_engine_probe(struct oci_engine *e, agentd_backend_caps *caps, agentd_error *err);
/* A sandbox as a `sleep infinity` container of the policy's image (spec->image, a name of
 * the engine's store), hardened (docs/backends.md#oci), in agentd's cgroup agentd/<id>. */
int oci_engine_create(struct oci_engine *e, agentd_backend *b, const agentd_spec *spec,
		      agentd_sandbox **out, agentd_error *err);
extern const agentd_sandbox_ops oci_engine_sandbox_ops;

#endif
