/* security_image.c: issue 13, the security table's image row: code in a sandbox whose root
 * is an image (writable_root) writes over a file of the image; the store must not change. */
#include "cli/cli.h"
#include "cli/security.h"

#include <fcntl.h>
#include <sys/stat.h>

#define TABLE_IMAGE "agentd-probe/table:1"
static const char target_text[] = "the image's own\n";

/* {tmp}/images, holding one image of one layer: the file "target". NULL + err. */
static agentd_image_store *table_store(const struct sec_env *e, agentd_error *err)
{
	char dir[PATH_MAX], tree[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/images", e->tmp);
	snprintf(tree, sizeof(tree), "%s/image-tree", e->tmp);
	agentd_image_store *s = NULL;
	if (agentd_image_store_open(dir, &s, err) < 0)
		return NULL;
	int fd = mkdir(tree, 0755) < 0 && errno != EEXIST
		     ? -1
		     : open(tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int tfd =
	    fd < 0 ? -1 : openat(fd, "target", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int r = tfd < 0 || write_all(tfd, target_text, strlen(target_text)) < 0
		    ? agentd_error_errno(err, errno, "%s/target", tree)
		    : 0;
	if (tfd >= 0)
		close(tfd);
	/* a static busybox as bin/sleep, where the host has one (busybox-static): the oci
	 * backend's runc driver keeps its init on the image's sleep */
	int bfd = open("/bin/busybox", O_RDONLY | O_CLOEXEC);
	if (r == 0 && bfd >= 0) {
		int sfd = mkdirat(fd, "bin", 0755) < 0 && errno != EEXIST
			      ? -1
			      : openat(fd, "bin/sleep", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
		char buf[65536];
		ssize_t n;
		while (sfd >= 0 && (n = read(bfd, buf, sizeof(buf))) > 0)
			if (write_all(sfd, buf, (size_t)n) < 0)
				break;
		if (sfd >= 0)
			close(sfd);
	}
	if (bfd >= 0)
		close(bfd);
	agentd_image_info info = {0};
	if (r == 0)
		r = agentd_image_commit_dir(s, NULL, fd, NULL, TABLE_IMAGE, &info, err);
	agentd_image_info_free(&info);
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		agentd_image_store_free(s);
		return NULL;
	}
	return s;
}

/* What the store's layer holds at "target" now. */
static bool layer_unchanged(agentd_image_store *s, char *why, size_t n)
{
	agentd_error err = {0};
	agentd_image_lease *l = NULL;
	if (agentd_image_acquire(s, TABLE_IMAGE, &l, &err) < 0) {
		snprintf(why, n, "the image is gone: %s", err.msg);
		return false;
	}
	char *text = l->n_layers ? read_file_at(l->layer_fds[0], "target", 4096, NULL) : NULL;
	bool same = text && strcmp(text, target_text) == 0;
	snprintf(why, n, "%s", same ? "the store's layer is unchanged" : "the layer changed");
	free(text);
	agentd_image_lease_free(l);
	return same;
}

int judge_image_layer_write(agentd_sandbox *sb, const char *probe, const struct sec_env *e,
			    char *detail, size_t n)
{
	agentd_error err = {0};
	agentd_backend *b = agentd_sandbox_backend(sb);
	agentd_spec spec;
	int verdict = -1;
	agentd_sandbox *isb = NULL;
	agentd_image_store *s = table_store(e, &err);
	if (!s) {
		snprintf(detail, n, "make the table's image: %s", err.msg);
		return -1;
	}
	agentd_backend_set_image_store(b, s);
	if (agentd_spec_copy(&spec, agentd_sandbox_spec(sb), &err) == 0) {
		free(spec.image);
		spec.image = strdup(TABLE_IMAGE);
		spec.writable_root = true;
		if (agentd_backend_create_sandbox(b, &spec, &isb, &err) < 0) {
			/* a backend that cannot give an image root has no image to write to */
			snprintf(detail, n, "refused: %s", err.msg);
			verdict = err.code == ENOTSUP || err.code == EPERM ? 0 : -1;
		}
		agentd_spec_free(&spec);
	}
	char *argv[] = {(char *)probe, "write", "/target", NULL};
	agentd_command cmd = {.argv = argv, .timeout_ms = 10000};
	agentd_exec_ctx ctx = {0};
	agentd_exec_output o;
	memset(&o, 0, sizeof(o));
	if (isb && agentd_sandbox_exec(isb, &cmd, &ctx, &o, &err) < 0) {
		snprintf(detail, n, "exec: %s", err.msg);
	} else if (isb) {
		char why[160];
		verdict = layer_unchanged(s, why, sizeof(why)) ? 0 : 1;
		snprintf(detail, n, "%s (inside: %.*s)", why,
			 (int)(o.out_len > 80 ? 80 : o.out_len), o.out ? (const char *)o.out : "");
	}
	agentd_exec_output_free(&o);
	if (isb)
		agentd_sandbox_destroy(isb, NULL);
	agentd_backend_set_image_store(b, NULL);
	agentd_image_store_free(s);
	return verdict;
}
