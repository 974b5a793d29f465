/* lease.c: an image handed to a backend — its layers' directories as O_PATH fds (bottom
 * first) and host paths, its config's defaults, and the use lock that keeps rm and prune
 * off it while a sandbox runs on it. */
#include "lib/image/image.h"

#include <fcntl.h>
#include <sys/file.h>

void agentd_image_lease_free(agentd_image_lease *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n_layers; i++) {
		if (l->layer_fds[i] >= 0)
			close(l->layer_fds[i]);
		free(l->layer_paths[i]);
	}
	free(l->layer_fds);
	free(l->layer_paths);
	agentd_image_config_free(&l->config);
	if (l->use_fd >= 0)
		close(l->use_fd);
	free(l);
}

/* The use lock of hex, shared (rm and prune only test it, under the records lock). */
static int use_lock(agentd_image_store *s, const char *hex, agentd_error *err)
{
	char path[IMAGE_HEX_LEN + 16];
	snprintf(path, sizeof(path), "images/%s.use", hex);
	int fd = openat(s->dfd, path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	int r;
	while (fd >= 0 && (r = flock(fd, LOCK_SH)) < 0 && errno == EINTR)
		;
	if (fd < 0 || r < 0) {
		agentd_error_errno(err, errno, "image sha256:%.12s: use lock", hex);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int open_layers(agentd_image_store *s, json_t *layers, agentd_image_lease *l,
		       agentd_error *err)
{
	l->n_layers = json_array_size(layers);
	l->layer_fds = xcalloc(l->n_layers ? l->n_layers : 1, sizeof(int));
	l->layer_paths = xcalloc(l->n_layers ? l->n_layers : 1, sizeof(char *));
	for (size_t i = 0; i < l->n_layers; i++)
		l->layer_fds[i] = -1;
	for (size_t i = 0; i < l->n_layers; i++) {
		const char *d = json_string_value(json_array_get(layers, i));
		const char *hex = digest_hex(d);
		if (!hex)
			return agentd_error_set(err, EIO, "image %s: a bad layer in its record", l->id);
		char rel[IMAGE_HEX_LEN + 16];
		snprintf(rel, sizeof(rel), "layers/%s", hex);
		l->layer_fds[i] = openat(s->dfd, rel, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (l->layer_fds[i] < 0)
			return agentd_error_errno(err, errno, "image %s: layer %s", l->id, d);
		l->layer_paths[i] = xasprintf("%s/%s", s->dir, rel);
	}
	return 0;
}

int agentd_image_acquire(agentd_image_store *s, const char *ref, agentd_image_lease **out,
			 agentd_error *err)
{
	*out = NULL;
	_cleanup_close_ int rl = store_lock(s, "records.lock", LOCK_EX, err);
	char hex[IMAGE_HEX_LEN + 1];
	json_t *rec = rl < 0 ? NULL : record_of_ref(s, ref, hex, NULL, err);
	if (!rec)
		return -1;
	agentd_image_lease *l = xcalloc(1, sizeof(*l));
	snprintf(l->id, sizeof(l->id), "sha256:%s", hex);
	l->use_fd = use_lock(s, hex, err);
	int r = l->use_fd < 0 ? -1 : open_layers(s, json_object_get(rec, "layers"), l, err);
	if (r == 0)
		r = config_load(s, hex, &l->config, err);
	json_decref(rec);
	if (r < 0) {
		agentd_image_lease_free(l);
		return -1;
	}
	*out = l;
	return 0;
}
