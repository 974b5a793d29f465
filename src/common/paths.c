/* paths.c: where agentd's files are found, the same for the daemon and its clients. */
#include "common/common.h"

const char *socket_path_default(const char *flag)
{
	static char buf[512];
	if (flag && *flag)
		return flag;
	const char *env = getenv("AGENTD_SOCKET");
	if (env && *env)
		return env;
	if (geteuid() == 0)
		return "/run/agentd/agentd.sock";
	const char *x = getenv("XDG_RUNTIME_DIR");
	snprintf(buf, sizeof(buf), "%s/agentd.sock", x && *x ? x : "/tmp");
	return buf;
}
