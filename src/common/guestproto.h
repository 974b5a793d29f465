/* guestproto.h: the framed protocol between agentd (host) and agentd-guest (PID 1 of a
 * micro-VM), over one virtio-serial port. Shared by both sides; the codec (guestproto.c)
 * makes no allocation, so the static guest links it as it is.
 *
 * Everything the host reads is hostile (the guest kernel and agent may be the attacker's):
 * every size is bounded here, every frame is validated before any field is used, and a
 * malformed frame ends the channel (the host then treats the VM as dead), never the daemon.
 *
 * Wire format, little-endian:
 *   frame   = header (GP_HDR_SIZE bytes) + payload (len bytes, len <= GP_MAX_PAYLOAD)
 *   header  = u32 len | u16 type | u16 flags (0: reserved) | u32 chan
 *   payload = for data frames (GP_STDIN, GP_STDOUT, GP_STDERR, GP_STREAM_DATA,
 *             GP_FILE_DATA) raw bytes; for every other frame a sequence of fields
 *   field   = u16 tag | u32 len | len bytes   (integers: exactly 8 bytes, u64 LE;
 *             strings: not NUL-terminated, no NUL inside; tags may repeat where noted,
 *             order kept; an unknown tag is skipped: newer peers may add fields)
 *
 * chan: 0 = the control channel (HELLO, SETUP, PING, FREEZE, POWEROFF...). Channels the
 * host opens (an exec, a file transfer) are 1..0x7fffffff, chosen by the host; channels the
 * guest opens (an egress stream: a connection to the guest's 127.0.0.1:3128) have the top
 * bit set, chosen by the guest. A channel is closed once both sides sent its last frame
 * (GP_EXIT, GP_FILE_END, GP_STREAM_CLOSE both ways) and its number may then be reused.
 *
 * Versioning: the guest's first frame is GP_HELLO with GP_T_VERSION; the host refuses a
 * major version other than its own (GP_VERSION_MAJOR) and may use what GP_T_CAPS says.
 *
 * Flow control: each output stream (an exec's stdout and stderr together, a guest-opened
 * egress stream, a file read) starts with GP_INITIAL_CREDIT bytes the sender may send; the
 * receiver returns credit with GP_CREDIT (GP_T_BYTES) as it consumes. A sender without
 * credit stops reading its source (the process blocks on a full pipe), it never drops
 * data. Credit the host did not grant and the guest used anyway is a protocol error. The
 * host's stdin and stream data to the guest are bounded the same way (the guest grants). */
#ifndef AGENTD_GUESTPROTO_H
#define AGENTD_GUESTPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GP_VERSION_MAJOR 1u
#define GP_VERSION_MINOR 0u
#define GP_HDR_SIZE 12u
#define GP_MAX_PAYLOAD (64u * 1024u)	/* a frame's payload at most */
#define GP_MAX_FIELDS 8192u		/* fields of one frame */
#define GP_MAX_ARGS 4096u		/* GP_T_ARG of one GP_EXEC */
#define GP_MAX_ENV 4096u		/* GP_T_ENV of one GP_EXEC */
#define GP_MAX_STRING 4096u		/* a path, a message, one "K=V" */
#define GP_INITIAL_CREDIT (256u * 1024u)
#define GP_MAX_CHANNELS 1024u		/* open channels per VM (each side refuses more) */
#define GP_GUEST_CHAN 0x80000000u	/* guest-opened channels have this bit */
#define GP_PORT_NAME "org.agentd.guest.0"	/* the virtio-serial port's name */
#define GP_EGRESS_PORT 3128			/* the guest's 127.0.0.1 proxy listener */

enum gp_type {
	/* guest -> host */
	GP_HELLO = 1,		/* chan 0: T_VERSION, T_AGENT, T_CAPS, T_BOOT_MS */
	GP_STARTED = 2,		/* exec chan: T_PID (the process's pid in the guest) */
	GP_STDOUT = 3,		/* exec chan: data */
	GP_STDERR = 4,		/* exec chan: data */
	GP_EXIT = 5,		/* exec chan, last: T_EXIT_CODE or T_SIGNAL, T_LIMIT,
				 * T_CPU_MS, T_PEAK_MEM, T_WALL_MS, T_OUT_TRUNC */
	GP_ERROR = 6,		/* any chan: a request failed: T_ERRNO, T_MESSAGE (for an
				 * exec chan it is the last frame: the command never ran) */
	GP_OK = 7,		/* chan of a control request or file op that succeeded
				 * (SETUP, FREEZE, THAW, FILE_PUT...): optional fields */
	GP_PONG = 8,		/* chan 0: answer to PING, T_SEQ echoed */

	/* host -> guest */
	GP_SETUP = 32,		/* chan 0, once after HELLO: T_HOSTNAME, T_MOUNT (repeated),
				 * T_NETWORK, T_CLOCK_NS, T_SEED (entropy, 32 bytes),
				 * T_SECCOMP_BPF. A T_MOUNT whose target is "/" is the root
				 * every exec runs in (the guest pivots its execs into it) */
	GP_EXEC = 33,		/* new chan: T_ARG+ (argv), T_ENV* (the whole environment:
				 * the guest adds nothing), T_CWD, T_UID, T_GID, T_STDIN
				 * (1: stdin frames follow; 0: /dev/null), T_TIMEOUT_MS,
				 * T_MEM_BYTES, T_PIDS, T_CPU_MS, T_NOFILE, T_FSIZE,
				 * T_OUTPUT_MAX, T_SECCOMP, T_NET_NONE, T_TTY_ROWS/COLS */
	GP_STDIN = 34,		/* exec chan: data; an empty payload is EOF */
	GP_SIGNAL = 35,		/* exec chan: T_SIGNO (to the process; T_GROUP 1: its tree) */
	GP_PING = 36,		/* chan 0: T_SEQ */
	GP_FREEZE = 37,		/* chan 0: freeze every exec's cgroup, sync filesystems */
	GP_THAW = 38,		/* chan 0 */
	GP_POWEROFF = 39,	/* chan 0: kill everything, sync, power off */
	GP_RESIZE = 40,		/* exec chan with a tty: T_TTY_ROWS, T_TTY_COLS */

	/* both ways */
	GP_CREDIT = 64,		/* chan: T_BYTES more may be sent on it */
	GP_STREAM_OPEN = 65,	/* guest -> host, guest chan: a client connected to the
				 * guest's 127.0.0.1:GP_EGRESS_PORT; T_PEER (its address, for
				 * audit). The host answers GP_OK or GP_STREAM_CLOSE */
	GP_STREAM_DATA = 66,	/* guest chan: data */
	GP_STREAM_CLOSE = 67,	/* guest chan: this side sends nothing more (T_ERRNO optional) */

	/* files (host -> guest requests on a new chan; paths absolute, resolved by the guest
	 * without following symlinks out of its root; the host trusts nothing it gets back) */
	GP_FILE_GET = 80,	/* T_PATH, T_MAX_BYTES: guest answers FILE_DATA* + FILE_END */
	GP_FILE_PUT = 81,	/* T_PATH, T_MODE, T_UID, T_GID: FILE_DATA* + FILE_END follow;
				 * the guest answers GP_OK or GP_ERROR */
	GP_FILE_DATA = 82,	/* data */
	GP_FILE_END = 83,	/* the last frame of a transfer: T_SIZE (total), T_MODE */
	GP_FILE_STAT = 84,	/* T_PATH: guest answers GP_OK with T_MODE, T_SIZE, T_UID... */
	GP_FILE_LIST = 85,	/* T_PATH: GP_OK with T_NAME* (bounded by GP_MAX_PAYLOAD) */
	GP_FILE_REMOVE = 86,	/* T_PATH, T_RECURSIVE */
	GP_FILE_MKDIR = 87,	/* T_PATH, T_MODE, T_UID, T_GID */
};

enum gp_tag {
	GP_T_VERSION = 1,	/* u64: major << 16 | minor */
	GP_T_AGENT = 2,		/* string: the agent's build ("agentd-guest 0.1.0") */
	GP_T_CAPS = 3,		/* u64: GP_CAP_* */
	GP_T_BOOT_MS = 4,	/* u64: guest uptime when ready */
	GP_T_ARG = 10,		/* string, repeated */
	GP_T_ENV = 11,		/* string "K=V", repeated */
	GP_T_CWD = 12,		/* string */
	GP_T_UID = 13,		/* u64 */
	GP_T_GID = 14,		/* u64 */
	GP_T_STDIN = 15,	/* u64 0/1 */
	GP_T_TIMEOUT_MS = 16,	/* u64, 0 = none (the host keeps its own deadline too) */
	GP_T_MEM_BYTES = 17,	/* u64, 0 = none: memory.max of the exec's guest cgroup */
	GP_T_PIDS = 18,		/* u64, 0 = none: pids.max */
	GP_T_CPU_MS = 19,	/* u64: limit (EXEC) or usage (EXIT) */
	GP_T_NOFILE = 20,	/* u64: RLIMIT_NOFILE */
	GP_T_FSIZE = 21,	/* u64: RLIMIT_FSIZE */
	GP_T_OUTPUT_MAX = 22,	/* u64: stdout+stderr bytes before the guest kills the tree */
	GP_T_SECCOMP = 23,	/* u64: 0 none, 1 agentd's default profile */
	GP_T_NET_NONE = 24,	/* u64 1: no egress listener for this exec (connect denied) */
	GP_T_TTY_ROWS = 25,	/* u64 (EXEC: a pty is the process's stdio) */
	GP_T_TTY_COLS = 26,
	GP_T_PID = 30,		/* u64 */
	GP_T_EXIT_CODE = 31,	/* u64 */
	GP_T_SIGNAL = 32,	/* u64: killed by this signal */
	GP_T_LIMIT = 33,	/* u64: GP_LIMIT_* */
	GP_T_PEAK_MEM = 34,	/* u64 bytes */
	GP_T_WALL_MS = 35,	/* u64 */
	GP_T_OUT_TRUNC = 36,	/* u64 1: output was cut at T_OUTPUT_MAX */
	GP_T_ERRNO = 40,	/* u64 */
	GP_T_MESSAGE = 41,	/* string */
	GP_T_SEQ = 42,		/* u64 */
	GP_T_SIGNO = 43,	/* u64 */
	GP_T_GROUP = 44,	/* u64 0/1 */
	GP_T_BYTES = 45,	/* u64 */
	GP_T_PEER = 46,		/* string */
	GP_T_HOSTNAME = 50,	/* string */
	GP_T_MOUNT = 51,	/* nested fields: GP_T_SOURCE, GP_T_TARGET, GP_T_FSTYPE,
				 * GP_T_READONLY; repeated, mounted in order */
	GP_T_SOURCE = 52,	/* string: "/dev/vdb", a virtiofs tag... */
	GP_T_TARGET = 53,	/* string, absolute */
	GP_T_FSTYPE = 54,	/* string: ext4, virtiofs, tmpfs */
	GP_T_READONLY = 55,	/* u64 0/1 */
	GP_T_NETWORK = 56,	/* u64: GP_NET_* */
	GP_T_CLOCK_NS = 57,	/* u64: host CLOCK_REALTIME (after a restore too) */
	GP_T_SEED = 58,		/* bytes: entropy for the guest's pool */
	GP_T_PATH = 60,		/* string, absolute */
	GP_T_MODE = 61,		/* u64 */
	GP_T_SIZE = 62,		/* u64 */
	GP_T_MAX_BYTES = 63,	/* u64 */
	GP_T_NAME = 64,		/* string, repeated */
	GP_T_RECURSIVE = 65,	/* u64 0/1 */
	GP_T_MTIME_NS = 66,	/* u64 */
	GP_T_SECCOMP_BPF = 70,	/* bytes (SETUP): agentd's default profile compiled by the host
				 * for x86_64, struct sock_filter[] (len a multiple of 8, at
				 * most 4096 instructions); what T_SECCOMP 1 installs */
};

enum gp_limit {
	GP_LIMIT_NONE = 0,
	GP_LIMIT_MEMORY = 1,
	GP_LIMIT_PIDS = 2,
	GP_LIMIT_CPU_TIME = 3,
	GP_LIMIT_WALL_TIME = 4,
	GP_LIMIT_OUTPUT = 5,
	GP_LIMIT_WRITE = 6,
	GP_LIMIT_OPEN_FILES = 7,
};

enum gp_network {
	GP_NET_NONE = 0,	/* only lo; no egress listener */
	GP_NET_ALLOWLIST = 1,	/* only lo; the egress listener on 127.0.0.1:3128 */
};

#define GP_CAP_CGROUP2 (1u << 0)	/* per-exec guest cgroups (memory, pids, cpu) */
#define GP_CAP_SECCOMP (1u << 1)
#define GP_CAP_TTY (1u << 2)
#define GP_CAP_FREEZE (1u << 3)
#define GP_CAP_FILES (1u << 4)
#define GP_CAP_EGRESS (1u << 5)

struct gp_hdr {
	uint32_t len;
	uint16_t type;
	uint16_t flags;
	uint32_t chan;
};

/* The header in buf (GP_HDR_SIZE bytes) into *h: 0, or -EPROTO (len above GP_MAX_PAYLOAD,
 * flags not 0, a type not in enum gp_type). */
int gp_hdr_decode(const uint8_t *buf, struct gp_hdr *h);
void gp_hdr_encode(uint8_t *buf, const struct gp_hdr *h);
/* Is type one whose payload is raw data (not fields)? */
bool gp_type_is_data(uint16_t type);
const char *gp_type_name(uint16_t type);	/* "EXEC", or "?" */

/* Building a fields payload into a caller's buffer; overflow sticks (nothing is written
 * past cap) and gp_w_done then fails with -EMSGSIZE. */
struct gp_writer {
	uint8_t *buf;
	size_t cap, len;
	bool overflow;
};
void gp_w_init(struct gp_writer *w, uint8_t *buf, size_t cap);
void gp_w_u64(struct gp_writer *w, uint16_t tag, uint64_t v);
void gp_w_bytes(struct gp_writer *w, uint16_t tag, const void *p, size_t n);
void gp_w_str(struct gp_writer *w, uint16_t tag, const char *s);
/* A nested field: gp_w_begin returns the offset to close; the fields written until
 * gp_w_end(w, off) are its value. */
size_t gp_w_begin(struct gp_writer *w, uint16_t tag);
void gp_w_end(struct gp_writer *w, size_t off);
int gp_w_done(const struct gp_writer *w);	/* 0 or -EMSGSIZE */

/* Reading fields: gp_r_next gives the next one (1), 0 at the end, -EPROTO when a field
 * runs past the payload or there are more than GP_MAX_FIELDS. */
struct gp_field {
	uint16_t tag;
	uint32_t len;
	const uint8_t *val;
};
struct gp_reader {
	const uint8_t *p;
	size_t left;
	unsigned count;
};
void gp_r_init(struct gp_reader *r, const void *payload, size_t len);
int gp_r_next(struct gp_reader *r, struct gp_field *f);
/* A field's value: u64 needs exactly 8 bytes; a string at most max bytes (<= GP_MAX_STRING)
 * and no NUL, copied NUL-terminated into out (out_cap > its length). 0 or -EPROTO. */
int gp_f_u64(const struct gp_field *f, uint64_t *v);
int gp_f_str(const struct gp_field *f, char *out, size_t out_cap);

/* Reassembly of frames from a byte stream (the port delivers bytes, not frames): feed
 * what was read; gp_rx_frame returns 1 with a complete frame (header + payload pointing
 * into the buffer, valid until the next feed/frame call), 0 when more bytes are needed,
 * -EPROTO on a bad header (the stream is then unusable). The buffer is the caller's,
 * at least GP_HDR_SIZE + GP_MAX_PAYLOAD bytes. */
struct gp_rx {
	uint8_t *buf;
	size_t cap, have, off;
};
void gp_rx_init(struct gp_rx *rx, uint8_t *buf, size_t cap);
/* Where to read into and how much room is left (compacts first). */
uint8_t *gp_rx_space(struct gp_rx *rx, size_t *room);
void gp_rx_commit(struct gp_rx *rx, size_t n);
int gp_rx_frame(struct gp_rx *rx, struct gp_hdr *h, const uint8_t **payload);

#endif
