/* map.c: a micro-VM sandbox's policy mapping over its life (issue 15: vm-map): virtiofsd
 * started in QEMU's jail's cgroup before QEMU, its socket removed once QEMU is up, the
 * tree as the execs' root in SETUP, the allowlist's streams into the proxy, the files API
 * on the held fds, and all of it gone with the VM. */
#include "lib/backends/microvm/share.h"

/* The execs' user in the guest, the workdir's owner: as on container, AGENT_ID, or 0 with
 * run_as uid 0. */
static unsigned guest_id(const agentd_spec *spec)
{
	return spec->run_as_uid == 0 ? 0 : AGENT_ID;
}

struct vm_map *vm_map_new(const agentd_spec *spec)
{
	struct vm_map *m = xcalloc(1, sizeof(*m));
	m->spec = spec;
	m->share = (struct vm_share){.pid = -1, .pidfd = -1, .root_fd = -1, .workdir_fd = -1,
				     .scratch_fd = -1, .sock_dir_fd = -1};
	return m;
}

int vm_map_before_qemu(struct vm_map *m, agentd_sandbox *jail, uint64_t mem_bytes,
		       agentd_strv *args, agentd_error *err)
{
	struct ctr *c = jail->priv;
	uid_t quid;
	gid_t qgid;
	/* QEMU's directory in its jail (/vm): where its end of the socket is found */
	int qdir = jail->ops->workdir_fd(jail, &quid, &qgid, err);
	if (qdir < 0)
		return agentd_error_prefix(err, "QEMU's directory");
	if (c->cg && !(m->unit = ctr_unit_get(c, err))) {
		close(qdir);
		return agentd_error_prefix(err, "virtiofsd's cgroup");
	}
	struct vm_share_opts o = {
	    .spec = m->spec,
	    .uid = guest_id(m->spec),
	    .gid = guest_id(m->spec),
	    .sock_dir_fd = qdir,
	    .sock_uid = quid,
	    .sock_gid = qgid,
	    .cgroup_fd = m->unit ? cgroup_dir_fd(m->unit) : -1,
	};
	int r = vm_share_start(&o, &m->share, err);
	close(qdir);
	if (r < 0)
		return -1;
	_cleanup_free_ char *sock = xasprintf("%s/%s", "/vm", VM_SHARE_SOCK);
	vm_share_qemu_args(mem_bytes, sock, args);
	return 0;
}

void vm_map_qemu_up(struct vm_map *m)
{
	if (m)
		vm_share_connected(&m->share);
}

void vm_map_setup(const struct vm_map *m, struct gp_writer *w)
{
	if (!m || m->share.pid <= 0)
		return;
	size_t off = gp_w_begin(w, GP_T_MOUNT);
	gp_w_str(w, GP_T_SOURCE, VM_SHARE_TAG);
	gp_w_str(w, GP_T_TARGET, "/");
	gp_w_str(w, GP_T_FSTYPE, "virtiofs");
	gp_w_u64(w, GP_T_READONLY, 0); /* the host enforces read-only where the policy says */
	gp_w_end(w, off);
}

int vm_map_network(struct vm_map *m, struct vm_chan *ch, agentd_proxy *proxy, const char *id,
		   agentd_error *err)
{
	if (m->spec->network.mode != AGENTD_NET_ALLOWLIST)
		return 0;
	m->egress = vm_egress_start(ch, proxy, id, &m->spec->network.allow, err);
	return m->egress ? 0 : -1;
}

int vm_map_workdir_fd(const struct vm_map *m, bool root, uid_t *uid, gid_t *gid,
		      agentd_error *err)
{
	int src = root ? m->share.root_fd : m->share.workdir_fd;
	if (src < 0)
		return agentd_error_set(err, ENOENT, "the VM's files are not shared");
	int fd = fcntl(src, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return agentd_error_errno(err, errno, "the VM's files");
	*uid = guest_id(m->spec);
	*gid = guest_id(m->spec);
	return fd;
}

void vm_map_release(struct vm_map *m, agentd_sandbox *jail)
{
	if (!m)
		return;
	vm_egress_stop(m->egress);
	m->egress = NULL;
	vm_share_stop(&m->share);
	if (m->unit && jail)
		ctr_unit_put(jail->priv, m->unit, false);
	m->unit = NULL;
}

void vm_map_free(struct vm_map *m)
{
	if (!m)
		return;
	vm_map_release(m, NULL);
	free(m);
}
