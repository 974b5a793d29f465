/* upper.c: issue 13, img-build — the upper layer of a sandbox's writable image root, handed
 * to the host (an image build commits it): the init keeps it open at INIT_UPPER_FD. */
#include "lib/backends/container/container.h"

int ctr_root_upper(agentd_sandbox *sb, int *dir_fd, agentd_error *err)
{
	struct ctr *c = sb->priv;
	*dir_fd = -1;
	if (!sb->spec.image || !sb->spec.writable_root)
		return agentd_error_set(err, ENOTSUP, "sandbox %s: its root is no writable image",
					sb->id);
	/* Through the init's own fd: the scratch holding the upper layer is reachable from no
	 * path once the init pivoted. Root only (images are), which may read any process's
	 * fds; the pidfd says the pid was still the init's when the open ended. */
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)c->init_pid, INIT_UPPER_FD);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int e = errno;
	if (sys_pidfd_send_signal(c->init_pidfd, 0) < 0) {
		if (fd >= 0)
			close(fd);
		return agentd_error_set(err, ESRCH, "sandbox %s is not running", sb->id);
	}
	if (fd < 0)
		return agentd_error_errno(err, e, "sandbox %s: open its root's upper layer", sb->id);
	*dir_fd = fd;
	return 0;
}
