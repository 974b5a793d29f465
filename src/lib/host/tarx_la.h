/* tarx_la.h: libarchive as tarx.c calls it, loaded on first use (dlopen) rather than linked:
 * the library pulls ICU, libxml2 and libstdc++ in, which every `agentd run` would otherwise
 * map and relocate at start (-z now) for the files API it never uses. */
#ifndef AGENTD_TARX_LA_H
#define AGENTD_TARX_LA_H

#include "common/common.h"

#include <archive.h>
#include <archive_entry.h>

#define TARX_LA_FUNCS(X) \
	X(archive_entry_filetype) \
	X(archive_entry_free) \
	X(archive_entry_gid) \
	X(archive_entry_hardlink) \
	X(archive_entry_mtime) \
	X(archive_entry_mtime_nsec) \
	X(archive_entry_new) \
	X(archive_entry_pathname) \
	X(archive_entry_perm) \
	X(archive_entry_set_filetype) \
	X(archive_entry_set_gid) \
	X(archive_entry_set_mtime) \
	X(archive_entry_set_pathname) \
	X(archive_entry_set_perm) \
	X(archive_entry_set_size) \
	X(archive_entry_set_symlink) \
	X(archive_entry_set_uid) \
	X(archive_entry_size) \
	X(archive_entry_symlink) \
	X(archive_entry_uid) \
	X(archive_error_string) \
	X(archive_read_data) \
	X(archive_read_data_block) \
	X(archive_read_free) \
	X(archive_read_new) \
	X(archive_read_next_header) \
	X(archive_read_open_memory2) \
	X(archive_read_support_filter_gzip) \
	X(archive_read_support_filter_xz) \
	X(archive_read_support_filter_zstd) \
	X(archive_read_support_format_raw) \
	X(archive_read_support_format_tar) \
	X(archive_write_close) \
	X(archive_write_data) \
	X(archive_write_finish_entry) \
	X(archive_write_free) \
	X(archive_write_header) \
	X(archive_write_new) \
	X(archive_write_open2) \
	X(archive_write_open_fd) \
	X(archive_write_set_bytes_in_last_block) \
	X(archive_write_set_format_pax_restricted) \

struct tarx_la {
#define TARX_LA_MEMBER(name) __typeof__(name) *name;
	TARX_LA_FUNCS(TARX_LA_MEMBER)
#undef TARX_LA_MEMBER
};
/* The loaded functions, or NULL + err (ENOTSUP: libarchive is not installed). */
const struct tarx_la *tarx_la(agentd_error *err);

#endif
