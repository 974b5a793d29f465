/* seccomp_internal.h: what seccomp.c (default profile, compilation, install) shares with
 * seccomp_oci.c (JSON profiles): rule and filter helpers over libseccomp. Private to them. */
#ifndef AGENTD_JAIL_SECCOMP_INTERNAL_H
#define AGENTD_JAIL_SECCOMP_INTERNAL_H

#include "lib/jail/jail.h"

#include <pthread.h>
#include <seccomp.h>

/* Add a rule for a syscall by name; a name this architecture does not have is skipped. */
int sc_rule_add(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n,
		const struct scmp_arg_cmp *cmp, agentd_error *err);
/* socket/socketpair: every family but AF_UNIX when unix_only, else AF_VSOCK, AF_ALG and
 * netlink but NETLINK_ROUTE. */
int sc_deny_sockets(scmp_filter_ctx ctx, bool unix_only, agentd_error *err);
/* What a backend needs refused whatever the profile, as a filter of its own next to a JSON
 * profile: sockets but AF_UNIX with deny_inet_sockets, else netlink but NETLINK_ROUTE;
 * SysV IPC with deny_sysv_ipc. */
int sc_backend_floor(scmp_filter_ctx ctx, const struct seccomp_opts *o, agentd_error *err);
/* A native-only context (other ABIs kill the process), NULL + err. */
scmp_filter_ctx sc_filter_new(uint32_t default_action, agentd_error *err);
/* The context as BPF (*filter malloc'd, *len instructions). */
int sc_filter_export(scmp_filter_ctx ctx, void **filter, unsigned short *len, agentd_error *err);
/* Held around any use of libseccomp (see seccomp.c). */
extern pthread_mutex_t sc_compile_lock;

/* issue 13: oci-runtime. While set (this thread), sc_rule_add hands each rule to the
 * recorder instead of libseccomp (ctx unused): the default profile as data, for
 * seccomp_oci_emit.c. Rules by number only (future syscalls) are not recorded. */
struct sc_recorder {
	int (*add)(struct sc_recorder *r, uint32_t action, const char *name, unsigned n,
		   const struct scmp_arg_cmp *cmp, agentd_error *err);
};
extern __thread struct sc_recorder *sc_recorder;
/* The default profile's rules for o, into ctx (or the recorder). */
int sc_build_default(scmp_filter_ctx ctx, const struct seccomp_opts *o, agentd_error *err);

/* seccomp_oci.c: compile the OCI/Docker JSON profile at path, plus a second filter with
 * sc_backend_floor. */
int seccomp_oci_prepare(const char *path, const struct seccomp_opts *o, struct seccomp_prog *out,
			agentd_error *err);

#endif
