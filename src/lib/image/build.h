/* build.h: `agentd image build`'s private parts — the Debian bootstrap (bootstrap.c) that
 * build.c (the stages, the cache, the sandbox that runs commands) drives. */
#ifndef AGENTD_LIB_IMAGE_BUILD_H
#define AGENTD_LIB_IMAGE_BUILD_H

#include "common/common.h"

#define BUILD_TAIL 4096	/* the last bytes of a failed command's output, in its error */
/* data appended to tail (*len bytes, NUL-terminated), keeping its last BUILD_TAIL - 1. */
void build_tail_append(char tail[BUILD_TAIL], size_t *len, const void *data, size_t n);
/* A Debian package name (optionally =VERSION or :ARCH), never an option. */
bool build_valid_package(const char *p);
bool build_valid_suite(const char *s);
/* "host:port" of an http(s) mirror URL (default port 80 or 443); EINVAL for anything else. */
int build_mirror_hostport(const char *url, char **hostport, agentd_error *err);
/* The URI of the host's first apt source (type deb) that lists suite (NULL: any): /etc/apt/sources.list,
 * then sources.list.d's *.list and *.sources in name order. ENOENT when none does. */
int build_host_mirror(const char *suite, char **url, agentd_error *err);
/* mmdebstrap (minbase + packages, docs and caches trimmed) into target, a path that does
 * not exist yet under a directory only root reaches. EIO with its output's tail. */
int build_mmdebstrap(const char *suite, const agentd_strv *packages, const char *mirror,
		     const char *target, agentd_error *err);

/* upper.c. A build sandbox's root upper layer (upper: its fd; hostile content) copied into
 * the empty directory dst: files of the sandbox's root (upper's owner) as 0:0, any other
 * owner as nobody, whiteouts and opaque directories kept, devices, fifos and sockets left
 * out, nothing followed; E2BIG past max_entries or max_bytes of file data. */
int build_copy_upper(int upper, int dst, uint64_t max_entries, uint64_t max_bytes,
		     agentd_error *err);

#endif
