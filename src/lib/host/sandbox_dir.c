/* sandbox_dir.c: the private host directory of a sandbox, <work_root>/<id>/{workspace,tmp}.
 * Owned by the sandbox's uid, reachable by nobody else; removed fd-relative on destroy. */
#include "lib/host/host.h"

#include <fcntl.h>
#include <sys/stat.h>

int sandbox_dir_create(const char *work_root, const char *id, uid_t uid, gid_t gid,
		       char **dir_out, agentd_error *err)
{
	int r = mkdir_p(work_root, 0711);
	if (r < 0)
		return agentd_error_errno(err, -r, "create work root %s", work_root);
	/* 0711: sandboxes running as another uid must traverse to their own dir, and must
	 * not list the others. */
	if (chmod(work_root, 0711) < 0 && geteuid() == 0)
		return agentd_error_errno(err, errno, "chmod %s", work_root);

	_cleanup_free_ char *dir = xasprintf("%s/%s", work_root, id);
	if (mkdir(dir, 0700) < 0)
		return agentd_error_errno(err, errno, "create sandbox dir %s", dir);
	static const char *const subdirs[] = {"workspace", "tmp"};
	for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
		_cleanup_free_ char *sub = xasprintf("%s/%s", dir, subdirs[i]);
		if (mkdir(sub, 0700) < 0 || (geteuid() == 0 && chown(sub, uid, gid) < 0)) {
			int e = errno;
			rm_rf(dir);
			return agentd_error_errno(err, e, "create %s", sub);
		}
	}
	if (geteuid() == 0 && chown(dir, uid, gid) < 0) {
		int e = errno;
		rm_rf(dir);
		return agentd_error_errno(err, e, "chown %s", dir);
	}
	*dir_out = take_ptr(dir);
	return 0;
}

void sandbox_dir_remove(const char *work_root, const char *id)
{
	_cleanup_close_ int fd = open(work_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
		rm_rf_at(fd, id);
}
