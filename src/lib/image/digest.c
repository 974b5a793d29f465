/* digest.c: sha256 digests of blobs and layers (nettle), the "sha256:<hex>" form the image
 * specs use, and the checks of content against the digests its manifest and config claim. */
#include "lib/image/image.h"

#include <sys/mman.h>
#include <sys/stat.h>

bool hex64_valid(const char *h)
{
	if (!h || strlen(h) != IMAGE_HEX_LEN)
		return false;
	for (const char *c = h; *c; c++)
		if (!a_digit(*c) && !(*c >= 'a' && *c <= 'f'))
			return false;
	return true;
}

const char *digest_hex(const char *d)
{
	if (!d || strncmp(d, "sha256:", 7) || !hex64_valid(d + 7))
		return NULL;
	return d + 7;
}

void sha256_ctx_hex(struct sha256_ctx *c, char hex[IMAGE_HEX_LEN + 1])
{
	uint8_t d[SHA256_DIGEST_SIZE];
	sha256_digest(c, sizeof(d), d);
	for (size_t i = 0; i < sizeof(d); i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

void sha256_hex_of(const void *data, size_t len, char hex[IMAGE_HEX_LEN + 1])
{
	struct sha256_ctx c;
	sha256_init(&c);
	/* nettle takes size_t lengths; feed in pieces anyway (mapped files of many GiB) */
	for (size_t off = 0; off < len;) {
		size_t n = len - off > (1u << 30) ? (1u << 30) : len - off;
		sha256_update(&c, n, (const uint8_t *)data + off);
		off += n;
	}
	sha256_ctx_hex(&c, hex);
}

int map_file(int fd, const char *what, void **map, size_t *len, agentd_error *err)
{
	struct stat st;
	*map = NULL;
	*len = 0;
	if (fstat(fd, &st) < 0)
		return agentd_error_errno(err, errno, "%s", what);
	if (!S_ISREG(st.st_mode))
		return agentd_error_set(err, EINVAL, "%s: not a regular file", what);
	if (st.st_size == 0)
		return 0;
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED)
		return agentd_error_errno(err, errno, "%s: map", what);
	*map = m;
	*len = (size_t)st.st_size;
	return 0;
}

int digest_verify(const void *data, size_t len, const char *want, const char *what,
		  agentd_error *err)
{
	const char *hex = digest_hex(want);
	if (!hex)
		return agentd_error_set(err, EINVAL, "%s: not a sha256 digest: %.80s", what,
					want ? want : "(none)");
	char got[IMAGE_HEX_LEN + 1];
	sha256_hex_of(data, len, got);
	if (strcmp(got, hex))
		return agentd_error_set(err, EINVAL,
					"%s: digest mismatch: the content is sha256:%s, the "
					"manifest says %s", what, got, want);
	return 0;
}
