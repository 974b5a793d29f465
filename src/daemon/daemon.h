/* daemon.h: `agentd serve` (src/daemon/): serve.c parses the verb's flags, server.c runs
 * the HTTP server (libmicrohttpd) and maps routes to the handlers of api/. The daemon is
 * layered as the library: store <- http <- live <- api <- this folder. */
#ifndef AGENTD_DAEMON_H
#define AGENTD_DAEMON_H

#include "daemon/api/api.h"

int agentd_serve(const struct server_cfg *cfg, agentd_error *err);

#endif
