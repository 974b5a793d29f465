/* files.c: agentd_sandbox_open_file — the files API's one door into a sandbox: the path is
 * checked, the backend hands over the workdir fd it held from creation, and the open
 * happens beneath it (host/sandbox_files.c). */
#include "lib/core/core.h"

int agentd_sandbox_open_file(agentd_sandbox *sb, const char *path, bool write,
			     agentd_error *err)
{
	const char *rel = agentd_sandbox_path_relative(&sb->spec, path, err);
	if (!rel)
		return -1;
	if (!sb->ops->workdir_fd)
		return agentd_error_set(err, ENOTSUP, "files are not supported by backend %s",
					sb->backend->ops->name);
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	_cleanup_close_ int dir = sb->ops->workdir_fd(sb, &uid, &gid, err);
	if (dir < 0)
		return agentd_error_prefix(err, "sandbox %s", sb->id);
	return workdir_open_file(dir, rel, write, uid, gid, path, err);
}
