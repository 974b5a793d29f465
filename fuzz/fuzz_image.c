/* fuzz_image.c: libFuzzer target for image import (src/lib/image/: format detection,
 * manifests, indexes, configs, digests, decompression, layer unpacking through tarx). Each
 * input is written to a file and imported as an archive into a store inside a private
 * parent, bounded small. Then nothing may exist beside the store and the input, the
 * store's tmp dir must be empty, and no unpacked layer may hold a set-id bit, a device
 * node other than an overlay whiteout (0/0 char device), a fifo or a socket. The store is
 * emptied (rm + prune) for the next input. */
#include "agentd.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static char parent[64], store_dir[96], input[96];
static agentd_image_store *store;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	snprintf(parent, sizeof(parent), "/tmp/fuzz-image-XXXXXX");
	if (!mkdtemp(parent))
		abort();
	snprintf(store_dir, sizeof(store_dir), "%s/store", parent);
	snprintf(input, sizeof(input), "%s/in", parent);
	agentd_error err = {0};
	if (agentd_image_store_open(store_dir, &store, &err) < 0)
		abort();
	agentd_image_store_set_limits(store, 64, 1u << 20);
	return 0;
}

static int check_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	if (st->st_mode & (S_ISUID | S_ISGID))
		abort();
	if (S_ISCHR(st->st_mode) && st->st_rdev != makedev(0, 0))
		abort();
	if (S_ISBLK(st->st_mode) || S_ISFIFO(st->st_mode) || S_ISSOCK(st->st_mode))
		abort();
	return 0;
}

static void check_only(const char *dir, const char *a, const char *b)
{
	DIR *d = opendir(dir);
	if (!d)
		abort();
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    (!a || strcmp(de->d_name, a)) && (!b || strcmp(de->d_name, b)))
			abort();
	closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = open(input, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	agentd_error err = {0};
	agentd_image_info info;
	agentd_image_import_opts o = {.tag = "fuzz"};
	if (agentd_image_import(store, input, &o, &info, &err) == 0)
		agentd_image_info_free(&info);
	check_only(parent, "store", "in");
	char tmp[128], layers[128];
	snprintf(tmp, sizeof(tmp), "%s/tmp", store_dir);
	check_only(tmp, NULL, NULL);
	snprintf(layers, sizeof(layers), "%s/layers", store_dir);
	if (nftw(layers, check_entry, 16, FTW_PHYS) < 0)
		abort();
	agentd_image_info *v;
	size_t n;
	if (agentd_image_list(store, &v, &n, &err) == 0) {
		for (size_t i = 0; i < n; i++)
			agentd_image_remove(store, v[i].id, true, &err);
		agentd_image_list_free(v, n);
	}
	if (agentd_image_prune(store, NULL, &err) < 0)
		abort();
	return 0;
}
